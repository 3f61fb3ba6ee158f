#!/bin/zsh -f
# Prints what zsh's completion offers for a command line, one match a line:
#   zsh -f capture_completion.zsh SCRIPT 'ironcore-image url --layer '
# It runs an interactive zsh on a pseudo-terminal, loads compinit and SCRIPT,
# types the line and a Tab, and prints every match that reaches compadd.
# Exits 1 when the completion does not finish within about 20 seconds.
zmodload zsh/zpty || exit 3
zpty z zsh -f -i
local line
zpty -w z 'PROMPT=""; RPROMPT=""; setopt no_beep'
zpty -w z 'autoload -Uz compinit && compinit -u -D'
zpty -w z "source ${(q)1}"
zpty -w z 'compadd() {
  if [[ ${@[1,(i)(-|--)]} == *-(O|A|D)\ * ]]; then builtin compadd "$@"; return; fi
  local -a __hits
  builtin compadd -A __hits "$@"
  local h
  for h in $__hits; do print -r -- "<HIT>$h</HIT>"; done
  builtin compadd "$@"
}'
zpty -w z 'comppostfuncs=( __end ); __end() { print -r -- "<END>"; exit }'
zpty -w z "bindkey '^I' complete-word"
zpty -w z 'print -r -- "<READY>"'
# `zpty -r -t` that finds no data returns 1 and may still set the parameter,
# from a buffer it never filled (zsh 5.9): whatever bytes are there, tokens
# of zsh's own parser included, so the value is dropped unread.
local -i n=0
until [[ $line == *'<READY>'* && $line != *print* ]]; do
  (( n++ < 800 )) || { zpty -d z; exit 1 }
  zpty -r -t z line || { line=; sleep 0.025 }
done
zpty -w -n z "$2"$'\t'
n=0
while true; do
  (( n++ < 800 )) || { zpty -d z; exit 1 }
  if zpty -r -t z line; then
    [[ $line == *'<END>'* ]] && break
    [[ $line == *'<HIT>'* ]] && print -r -- "${${line#*<HIT>}%%</HIT>*}"
  else
    sleep 0.025
  fi
done
zpty -d z
