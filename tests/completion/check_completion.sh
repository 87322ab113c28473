#!/usr/bin/env bash
# Shell completion against the binary's own lists: packaging/completion/wg-fleet.bash is sourced
# in a clean bash and asked, as readline would, for several command lines; every answer is
# compared with `help-commands` (commands, options, choices) or with `addresses --json` of each
# example (node and fleet names), never with a list written here. A broken or missing fleet file
# yields what can be read, silently, exit 0. Then the zsh function: `zsh -n`, and the same
# questions to zsh's real completion system (compinit) typing on a pseudo-terminal
# (zsh_complete.zsh).
# Usage: check_completion.sh WG_FLEET_BINARY SOURCE_DIR
set -u
bin=$(realpath "$1"); src=$(realpath "$2")
pass=0 fail=0
ok() { echo "ok   $*"; pass=$((pass + 1)); }
bad() { echo "FAIL $*"; fail=$((fail + 1)); }
tmp=$(mktemp -d /tmp/wgf-completion.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# The bash completion's answer for a command line (the last word is the one being completed),
# sorted, one per line.
bash_complete() {
  bash --norc --noprofile -c '
    source "$1"; shift
    COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
    _wg_fleet
    printf "%s\n" "${COMPREPLY[@]}"' _ "$src/packaging/completion/wg-fleet.bash" "$bin" "$@" | sed '/^$/d' | sort
}
sorted() { printf '%s\n' "$@" | sed '/^$/d' | sort -u; }
expect() {  # expect WHAT EXPECTED ACTUAL
  if [[ $2 == "$3" ]]; then ok "$1"; else bad "$1: expected [$(echo $2)], got [$(echo $3)]"; fi
}

# The CLI's own lists.
mapfile -t lines < <("$bin" help-commands)
((${#lines[@]} >= 8)) || bad "help-commands lists ${#lines[@]} commands"
top=() render=() sandbox_actions=()
for l in "${lines[@]}"; do
  path=${l%%$'\t'*}; read -r -a w <<< "$path"
  top+=("${w[0]}")
  [[ ${w[0]} == render ]] && render+=("${w[1]}")
  [[ ${w[0]} == sandbox ]] && sandbox_actions+=("${w[1]}")
done
sandbox_up_opts=$(printf '%s\n' "${lines[@]}" | awk -F'\t' '$1 == "sandbox up" {print $2}')
plan_opts=$(printf '%s\n' "${lines[@]}" | awk -F'\t' '$1 == "plan" {print $2}')
globals=$("$bin" help-commands --globals)
long_opts() { tr ' ' '\n' <<< "$*" | grep '^--' ; }

expect "commands at the top" "$(sorted "${top[@]}")" "$(bash_complete "")"
expect "render's subcommands" "$(sorted "${render[@]}")" "$(bash_complete render "")"
((${#sandbox_actions[@]} >= 4)) && expect "sandbox's actions" "$(sorted "${sandbox_actions[@]}")" "$(bash_complete sandbox "")" \
  || bad "help-commands shows no sandbox actions"
expect "sandbox up's options and the global ones" "$(sorted $(long_opts $sandbox_up_opts $globals))" "$(bash_complete sandbox up --)"
expect "sandbox up FILE completes file names" "$src/examples/demo.yaml" "$(bash_complete sandbox up "$src/examples/dem")"
expect "plan's options and the global ones" "$(sorted $(long_opts $plan_opts $globals))" "$(bash_complete plan --)"
expect "a prefix narrows the options" "$(sorted $(long_opts $plan_opts $globals | grep '^--d'))" "$(bash_complete plan --d)"
expect "global options before the command" "$(sorted $(tr ' ' '\n' <<< "$globals" | grep -- '^-'))" "$(bash_complete -)"

# Option values with a fixed set: each command's --format, against the formats its own error
# message for a bad one lists.
for l in "${lines[@]}"; do
  path=${l%%$'\t'*}
  [[ " ${l#*$'\t'} " == *" --format "* ]] || continue
  read -r -a w <<< "$path"
  formats=$("$bin" "${w[@]}" --format bogus 2>&1 | sed -n 's/.*use one of //p' | tr -d ' ' | tr ',' '\n' | sort)
  [[ -n $formats ]] || bad "$path --format bogus names no formats"
  expect "$path --format FORMAT" "$formats" "$(bash_complete "${w[@]}" --format "")"
done

# Node and fleet names of every example, from addresses --json.
for ex in "$src"/examples/*.yaml; do
  name=$(basename "$ex")
  json=$("$bin" -c "$ex" addresses --json 2>/dev/null) || { bad "$name: addresses --json failed"; continue; }
  nodes=$(python3 -c 'import json,sys; d=json.load(sys.stdin); print("\n".join(sorted({n for f in d["fleets"].values() for n in f["nodes"]})))' <<< "$json")
  fleets=$(python3 -c 'import json,sys; print("\n".join(sorted(json.load(sys.stdin)["fleets"])))' <<< "$json")
  first=$(head -1 <<< "$nodes")
  expect "$name: --node NAME" "$nodes" "$(bash_complete -c "$ex" --node "")"
  expect "$name: --node=NAME" "$nodes" "$(bash_complete -c "$ex" plan --node = "")"
  expect "$name: --node=PREFIX" "$(grep "^${first:0:2}" <<< "$nodes")" "$(bash_complete -c "$ex" plan --node = "${first:0:2}")"
  expect "$name: --config=FILE then --node" "$nodes" "$(bash_complete --config = "$ex" status --node "")"
  expect "$name: render wg-quick --fleet" "$fleets" "$(bash_complete -c "$ex" render wg-quick --fleet "")"
  expect "$name: sandbox exec NODE" "$nodes" "$(bash_complete -c "$ex" sandbox exec --name x "")"
  expect "$name: complete nodes" "$nodes" "$("$bin" -c "$ex" complete nodes)"
  expect "$name: complete fleets" "$fleets" "$("$bin" -c "$ex" complete fleets)"
done
demo=$src/examples/demo.yaml
expect "sandbox exec NODE wg-fleet COMMAND" "plan" "$(bash_complete -c "$demo" sandbox exec alice wg-fleet pl)"
expect "sandbox exec NODE wg-fleet ... --node" "$("$bin" -c "$demo" complete nodes)" "$(bash_complete -c "$demo" sandbox exec alice wg-fleet render hosts --node "")"
expect "-c FILE completes file names" "$src/examples/demo.yaml" "$(bash_complete -c "$src/examples/dem")"
expect "--state-dir DIR completes directories" "$src/examples" "$(bash_complete --state-dir "$src/exam")"
expect "serve --import-python FILE completes file names" "$src/examples/demo.yaml" "$(bash_complete serve --import-python "$src/examples/dem")"
expect "serve --wg-conf-dir DIR completes directories" "$src/examples" "$(bash_complete serve --wg-conf-dir "$src/exam")"

# A broken or missing file: what can be read, nothing on stderr, exit 0.
cat > "$tmp/half.yaml" <<'YAML'
fleets:
  good:
    controllers:
      hub1: {}
    peers:
      laptop1: { controller: hub1, bogus_key: 1 }
  bad: [not, a, map]
  also-bad:
    peers: { x: 1 }
YAML
printf 'fleets:\n  a: {controllers: {hub: {}}\n  unclosed: [\n' > "$tmp/broken.yaml"
head -c 3000 /dev/urandom > "$tmp/random.yaml"
for f in "$tmp/half.yaml" "$tmp/broken.yaml" "$tmp/random.yaml" "$tmp/missing.yaml" "$tmp" /dev/zero; do
  for what in nodes fleets; do
    out=$("$bin" -c "$f" complete "$what" 2> "$tmp/err"); rc=$?
    [[ $rc == 0 && ! -s $tmp/err ]] && ok "complete $what on $(basename "$f"): exit 0, quiet" \
      || bad "complete $what on $(basename "$f"): exit $rc, stderr: $(head -c 200 "$tmp/err")"
  done
  out=$("$bin" complete words -- -c "$f" --node "" 2> "$tmp/err"); rc=$?
  [[ $rc == 0 && ! -s $tmp/err ]] && ok "complete words on $(basename "$f"): exit 0, quiet" || bad "complete words on $(basename "$f"): exit $rc"
done
expect "a half-broken file gives the names it has" "$(sorted hub1 laptop1)" "$("$bin" -c "$tmp/half.yaml" complete nodes)"

# zsh: syntax, then the same questions to zsh's own completion system on a pseudo-terminal.
if ! command -v zsh >/dev/null; then
  bad "zsh is not installed (run.sh deps installs it)"
else
  zsh -n "$src/packaging/completion/_wg-fleet" && ok "zsh -n _wg-fleet" || bad "zsh -n _wg-fleet"
  mkdir "$tmp/bin" && ln -s "$bin" "$tmp/bin/wg-fleet"
  zlines=("wg-fleet " "wg-fleet sandbox " "wg-fleet plan --" "wg-fleet render "
          "wg-fleet -c $demo --node " "wg-fleet -c $demo plan --node=b" "wg-fleet -c $demo sandbox exec alice wg-fleet render wg-quick --fleet "
          "wg-fleet -c $src/examples/dem")
  if timeout 120 zsh -f "$src/tests/completion/zsh_complete.zsh" "$tmp/bin" "$src/packaging/completion" "$tmp/zsh.out" "${zlines[@]}"; then
    ok "zsh's completion system ran for ${#zlines[@]} lines"
  else
    bad "zsh's completion system did not finish (exit $?)"
  fi
  zsh_answer() { awk -v l="== $1" '$0 == l {on = 1; next} /^== / {on = 0} on' "$tmp/zsh.out" | sort; }
  nodes=$("$bin" -c "$demo" complete nodes)
  expect "zsh: commands at the top" "$(sorted "${top[@]}")" "$(zsh_answer "wg-fleet ")"
  expect "zsh: sandbox's actions" "$(sorted "${sandbox_actions[@]}")" "$(zsh_answer "wg-fleet sandbox ")"
  expect "zsh: plan's options" "$(sorted $(long_opts $plan_opts $globals))" "$(zsh_answer "wg-fleet plan --")"
  expect "zsh: render's subcommands" "$(sorted "${render[@]}")" "$(zsh_answer "wg-fleet render ")"
  expect "zsh: --node NAME" "$nodes" "$(zsh_answer "wg-fleet -c $demo --node ")"
  expect "zsh: --node=PREFIX" "$(grep '^b' <<< "$nodes")" "$(zsh_answer "wg-fleet -c $demo plan --node=b")"
  expect "zsh: sandbox exec NODE wg-fleet ... --fleet" "$("$bin" -c "$demo" complete fleets)" \
    "$(zsh_answer "wg-fleet -c $demo sandbox exec alice wg-fleet render wg-quick --fleet ")"
  expect "zsh: -c FILE completes file names" "demo.yaml" "$(zsh_answer "wg-fleet -c $src/examples/dem")"
fi

echo "$pass passed, $fail failed"
((fail == 0))
