# bash completion for wg-fleet(8).
# The candidates come from the binary itself (`wg-fleet complete words -- WORD...`): commands,
# options and choices as this build knows them, node and fleet names from the file of -c
# (default /etc/wg-fleet.yaml). Lines ":files" and ":dirs" ask for file name completion.

_wg_fleet() {
    local bin=${COMP_WORDS[0]} cur=${COMP_WORDS[COMP_CWORD]} line i
    [[ $bin == "~/"* ]] && bin=$HOME/${bin#"~/"}
    type -P -- "$bin" >/dev/null 2>&1 || return 0
    # COMP_WORDBREAKS splits --opt=value into "--opt" "=" "value": join them again, so the
    # binary sees the words as typed.
    local -a words=()
    for ((i = 1; i <= COMP_CWORD; i++)); do
        local w=${COMP_WORDS[i]}
        if ((${#words[@]})) && [[ ${words[-1]} == --* ]] && { [[ $w == "=" && ${words[-1]} != *=* ]] || [[ ${words[-1]} == *= ]]; }; then
            words[-1]+=$w
        else
            words+=("$w")
        fi
    done
    [[ $cur == "=" ]] && cur=""
    COMPREPLY=()
    while IFS= read -r line; do
        case $line in
            "") ;;
            :files)
                compopt -o filenames 2>/dev/null
                mapfile -t -O "${#COMPREPLY[@]}" COMPREPLY < <(compgen -f -- "$cur")
                ;;
            :dirs)
                compopt -o filenames 2>/dev/null
                mapfile -t -O "${#COMPREPLY[@]}" COMPREPLY < <(compgen -d -- "$cur")
                ;;
            *) COMPREPLY+=("${line%%$'\t'*}") ;;
        esac
    done < <("$bin" complete words -- "${words[@]}" 2>/dev/null)
    return 0
}
complete -F _wg_fleet wg-fleet
