# Asks zsh's own completion system (compinit, _main_complete, the _wg-fleet function on fpath)
# for the candidates of command lines, as a user pressing TAB would: an interactive zsh on a
# pseudo-terminal (zpty) types each line and a TAB. compadd is wrapped to write down the matches
# it is given for the typed prefix (calls that only compute, with -O/-A/-D, are passed through).
# usage: zsh -f zsh_complete.zsh BINDIR COMPDIR OUT LINE...
# OUT gets "== LINE" and then one match per line, for each LINE (no single quotes in LINE).
zmodload zsh/zpty || exit 1
bindir=$1 compdir=$2 out=$3
shift 3
: > $out
zpty -b z "zsh -f -i"
# Input typed while the shell runs a command may be dropped when the line editor takes the
# terminal back: each write waits for the prompt (or a marker the shell prints), never a delay.
# Neither appears in the echo of what is typed.
prompt() { zpty -r z buf '*ZP> *' || exit 1; }
zpty -w z "PS1=Z\"\"P'> '"
prompt
zpty -w z "PATH=$bindir:\$PATH; fpath=($compdir \$fpath); autoload -Uz compinit; compinit -u -D; bindkey '^I' complete-word"
prompt
zpty -w z "compadd() { if (( \${@[(I)-[OAD]*]} )); then builtin compadd \"\$@\"; return; fi; local -a m; builtin compadd -O m \"\$@\"; (( \$#m )) && print -rl -- \${^m} >> $out; builtin compadd \"\$@\"; }"
prompt
i=0
for line in "$@"; do
  (( i++ ))
  zpty -w z "print -r -- '== $line' >> $out"
  prompt
  # TAB completes; ^E ^U clears the line, whatever was inserted, in the same line editor.
  zpty -w -n z "$line"$'\t\C-e\C-u'
  zpty -w z "print D\$(($i))D"
  zpty -r z buf "*D${i}D*" || exit 1
  prompt
done
zpty -d z
