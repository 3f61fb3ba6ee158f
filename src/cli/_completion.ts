/**
 * Shell completion scripts for bash, zsh, fish and PowerShell, generated from
 * the CLI's own command and flag tables so that they never drift from them:
 * commands, each command's flags, the values of flags with fixed choices
 * (`--layer KIND`), file names where a flag or argument names a file, and the
 * local store's tags (from `ironcore-image list`) where an argument is a tag.
 */

import type { FlagSpec } from "./_args.ts";
import type { Command } from "./_command.ts";

/** The shells a completion script can be printed for. */
export const SHELLS: readonly string[] = ["bash", "zsh", "fish", "powershell"];

/** A shell from {@linkcode SHELLS}. */
export type Shell = "bash" | "zsh" | "fish" | "powershell";

/** What the generator needs of the CLI. */
export interface CompletionTable {
  /** The program name completed. */
  program: string;
  /** Every command. */
  commands: readonly Command[];
  /** Flags every command accepts. */
  globalFlags: readonly FlagSpec[];
}

/** A command as completion sees it, `help` included. */
interface Entry {
  name: string;
  summary: string;
  flags: readonly FlagSpec[];
  complete: Command["complete"];
}

/** How a flag's value is completed. */
type ValueKind =
  | { kind: "none" }
  | { kind: "any" }
  | { kind: "files" }
  | { kind: "words"; words: readonly string[] };

/**
 * Tells whether a text is a shell completion target this module knows.
 *
 * @param name The shell's name.
 */
export function isShell(name: string): name is Shell {
  return SHELLS.includes(name);
}

function entries(table: CompletionTable): Entry[] {
  return [
    ...table.commands.map((c) => ({
      name: c.name,
      summary: c.summary,
      flags: c.flags,
      complete: c.complete,
    })),
    {
      name: "help",
      summary: "Show help for a command",
      flags: [],
      complete: table.commands.map((c) => c.name),
    },
  ];
}

function valueOf(flag: FlagSpec): ValueKind {
  if (flag.type === "boolean") return { kind: "none" };
  if (flag.choices) return { kind: "words", words: flag.choices };
  if (/^(FILE|DIR)\b/.test(flag.value ?? "")) return { kind: "files" };
  return { kind: "any" };
}

/** The names a flag is typed as: `--name` and `-x`. */
function spellings(flag: FlagSpec): string[] {
  return flag.short ? [`--${flag.name}`, `-${flag.short}`] : [`--${flag.name}`];
}

const TAGS_AWK = `awk 'NR > 1 && $2 != "<none>" { print $1 ":" $2 }'`;

/**
 * Prints the completion script for a shell.
 *
 * @param shell The shell.
 * @param table The CLI's commands and global flags.
 * @returns The script.
 */
export function completionScript(shell: Shell, table: CompletionTable): string {
  switch (shell) {
    case "bash":
      return bashScript(table);
    case "zsh":
      return zshScript(table);
    case "fish":
      return fishScript(table);
    case "powershell":
      return powershellScript(table);
  }
}

// --- bash ------------------------------------------------------------------

/** A word list in a bash (or fish) single-quoted string. */
function sh(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

function bashScript(table: CompletionTable): string {
  const all = entries(table);
  const fn = `_${table.program.replace(/\W/g, "_")}`;
  const globalsWithValue = table.globalFlags.filter((f) => f.type !== "boolean")
    .flatMap(spellings);
  const flagCases = all.filter((e) => e.flags.length).map((e) =>
    `    ${e.name}) flags+=${sh(` ${e.flags.flatMap(spellings).join(" ")}`)} ;;`
  ).join("\n");
  // One case branch per flag with a value: "COMMAND FLAG" → how to complete.
  const valueCases: string[] = [];
  const addValues = (pattern: string, flag: FlagSpec) => {
    const v = valueOf(flag);
    const answer = v.kind === "words"
      ? `words ${v.words.join(" ")}`
      : v.kind === "none"
      ? "bool"
      : v.kind;
    valueCases.push(`    ${pattern}) echo ${sh(answer)} ;;`);
  };
  for (const f of table.globalFlags) {
    addValues(spellings(f).map((s) => `*" ${s}"`).join("|"), f);
  }
  for (const e of all) {
    for (const f of e.flags) {
      addValues(
        spellings(f).map((s) => `${sh(`${e.name} ${s}`)}`).join("|"),
        f,
      );
    }
  }
  const argCases = all.filter((e) => e.complete !== undefined).map((e) => {
    const c = e.complete!;
    const action = c === "tags"
      ? `words_list=$(${fn}_tags)`
      : c === "files"
      ? "files=1"
      : `words_list=${sh(c.join(" "))}`;
    return `    ${e.name}) ${action} ;;`;
  }).join("\n");
  return `# bash completion for ${table.program}
#
# Load it in this shell:    source <(${table.program} completion bash)
# Load it in every shell:   ${table.program} completion bash > ~/.local/share/bash-completion/completions/${table.program}

# Tags of the local store (of --store-path when given), from "list".
${fn}_tags() {
  local -a store=()
  local i
  for ((i = 1; i < \${#words[@]}; i++)); do
    case \${words[i]} in
      --store-path) store=(--store-path "\${words[i+1]}") ;;
      --store-path=*) store=("\${words[i]}") ;;
    esac
  done
  "\${words[0]}" "\${store[@]}" -q list 2>/dev/null | ${TAGS_AWK}
}

# How the value of flag $2 of command $1 is completed: "words W…", "files",
# "any" or "bool" (a boolean flag, whose value only follows "="). Fails for a
# word that is not a flag of that command.
${fn}_value() {
  case "$1 $2" in
${valueCases.join("\n")}
    *) return 1 ;;
  esac
}

${fn}() {
  local IFS=$' \\t\\n'
  local -a words=()
  local cword=0 i w
  # Bash splits words at ":" and "=" (COMP_WORDBREAKS): join my-os:1.0 and
  # --layer=kernel again.
  for ((i = 0; i < \${#COMP_WORDS[@]}; i++)); do
    w=\${COMP_WORDS[i]}
    if ((\${#words[@]} > 0)) && [[ $w == [:=]* || \${COMP_WORDS[i-1]} == *[:=] ]]; then
      words[\${#words[@]}-1]+=$w
    else
      words+=("$w")
    fi
    ((i == COMP_CWORD)) && cword=$((\${#words[@]} - 1))
  done
  local cur=\${words[cword]}
  local prev=""
  ((cword > 0)) && prev=\${words[cword-1]}

  # The command: the first word that is neither a flag nor a flag's value.
  local cmd=""
  for ((i = 1; i < cword; i++)); do
    w=\${words[i]}
    case $w in
      --) break ;;
      -*=*) ;;
      ${globalsWithValue.join("|")}) ((i++)) ;;
      -*) ;;
      *) cmd=$w; break ;;
    esac
  done

  # A flag's value, after a space or after "=".
  local flag="" value="" kind
  if [[ $cur == -*=* ]]; then
    flag=\${cur%%=*}
    value=\${cur#*=}
  elif [[ $prev == -* && $prev != *=* ]]; then
    kind=$(${fn}_value "$cmd" "$prev") && [[ $kind != bool ]] && flag=$prev value=$cur
  fi

  local words_list="" files=0 typed=$cur
  if [[ -n $flag ]]; then
    typed=$value
    kind=$(${fn}_value "$cmd" "$flag") || return 0
    case $kind in
      words\\ *) words_list=\${kind#words } ;;
      bool) words_list="true false" ;;
      files) files=1 ;;
      *) return 0 ;;
    esac
  elif [[ $cur == -* ]]; then
    local flags=${sh(table.globalFlags.flatMap(spellings).join(" "))}
    case $cmd in
${flagCases}
    esac
    words_list=$flags
  elif [[ -z $cmd ]]; then
    words_list=${sh(all.map((e) => e.name).join(" "))}
  else
    case $cmd in
${argCases}
    esac
  fi

  if ((files)); then
    compopt -o filenames 2>/dev/null
    mapfile -t COMPREPLY < <(compgen -f -- "$typed")
  else
    mapfile -t COMPREPLY < <(compgen -W "$words_list" -- "$typed")
  fi
  # Readline replaces only the text after the last ":" or "=" that bash
  # splits at: answer with that part.
  local before=\${cur%"$typed"}
  if [[ -n $before && $COMP_WORDBREAKS != *=* ]]; then
    COMPREPLY=("\${COMPREPLY[@]/#/$before}")
  fi
  if [[ $typed == *:* && $COMP_WORDBREAKS == *:* ]]; then
    local strip=\${typed%"\${typed##*:}"}
    COMPREPLY=("\${COMPREPLY[@]#"$strip"}")
  fi
  return 0
}

complete -F ${fn} ${table.program}
`;
}

// --- zsh -------------------------------------------------------------------

/** Text inside `[...]` of an `_arguments` spec, in single quotes. */
function zshDescription(text: string): string {
  return text.replaceAll("\\", "\\\\").replaceAll("[", "\\[").replaceAll(
    "]",
    "\\]",
  ).replaceAll("'", `'\\''`);
}

function zshSpecs(flags: readonly FlagSpec[]): string[] {
  return flags.flatMap((f) => {
    const names = spellings(f);
    // Both spellings exclude each other; a repeatable flag may come again.
    const exclusive = names.length > 1 && f.type !== "strings"
      ? `(${names.join(" ")})`
      : "";
    const repeat = f.type === "strings" ? "*" : "";
    const v = valueOf(f);
    const message = (f.value ?? "VALUE").replaceAll(":", "\\:")
      .replaceAll("'", "");
    const action = v.kind === "words"
      ? `(${v.words.join(" ")})`
      : v.kind === "files"
      ? "_files"
      : " ";
    return names.map((n) => {
      const arg = v.kind === "none" ? "" : n.startsWith("--") ? "=" : "+";
      const tail = v.kind === "none" ? "" : `:${message}:${action}`;
      return `'${exclusive}${repeat}${n}${arg}[${
        zshDescription(f.help)
      }]${tail}'`;
    });
  });
}

function zshScript(table: CompletionTable): string {
  const all = entries(table);
  const fn = `_${table.program.replace(/\W/g, "_")}`;
  const arg = (e: Entry): string => {
    const c = e.complete;
    if (c === undefined) return "";
    const action = c === "tags"
      ? `${fn}_tags`
      : c === "files"
      ? "_files"
      : `(${c.join(" ")})`;
    return ` '*:argument:${action}'`;
  };
  const cases = all.map((e) =>
    `    ${e.name})\n      _arguments -s $globals ${
      zshSpecs(e.flags).join(" ")
    }${arg(e)} && ret=0\n      ;;`
  ).join("\n");
  const commands = all.map((e) => `    ${sh(`${e.name}:${e.summary}`)}`).join(
    "\n",
  );
  return `#compdef ${table.program}
# zsh completion for ${table.program}
#
# Load it in this shell:    source <(${table.program} completion zsh)
# Load it in every shell:   ${table.program} completion zsh > "\${fpath[1]}/_${table.program}"

# Tags of the local store (of --store-path when given), from "list".
${fn}_tags() {
  local -a tags
  tags=(\${(f)"$("$${fn}_program" $${fn}_store -q list 2>/dev/null | ${TAGS_AWK})"})
  compadd -a tags
}

${fn}() {
  local curcontext=$curcontext state state_descr line ret=1
  typeset -A opt_args
  local ${fn}_program=$words[1]
  local -a ${fn}_store
  local i
  for (( i = 2; i <= $#words; i++ )); do
    case $words[i] in
      --store-path) ${fn}_store=(--store-path "$words[i+1]") ;;
      --store-path=*) ${fn}_store=("$words[i]") ;;
    esac
  done
  local -a globals
  globals=(
    ${zshSpecs(table.globalFlags).join("\n    ")}
  )
  _arguments -C -s $globals '1: :->command' '*:: :->args' && ret=0
  case $state in
  command)
    local -a commands
    commands=(
${commands}
    )
    _describe -t commands '${table.program} command' commands && ret=0
    ;;
  args)
    curcontext=\${curcontext%:*:*}:${table.program}-$words[1]:
    case $words[1] in
${cases}
    esac
    ;;
  esac
  return ret
}

if [[ $funcstack[1] == _${table.program} ]]; then
  ${fn} "$@"
else
  compdef ${fn} ${table.program}
fi
`;
}

// --- fish ------------------------------------------------------------------

function fishScript(table: CompletionTable): string {
  const all = entries(table);
  const fn = `__${table.program.replace(/\W/g, "_")}`;
  const p = table.program;
  const globalsWithValue = table.globalFlags.filter((f) => f.type !== "boolean")
    .flatMap(spellings);
  const flagLine = (f: FlagSpec, condition: string): string => {
    const v = valueOf(f);
    const parts = [`complete -c ${p}`];
    if (condition) parts.push(`-n ${sh(condition)}`);
    parts.push(`-l ${f.name}`);
    if (f.short) parts.push(`-s ${f.short}`);
    if (v.kind === "words") parts.push(`-x -a ${sh(v.words.join(" "))}`);
    else if (v.kind === "files") parts.push("-r -F");
    else if (v.kind === "any") parts.push("-x");
    parts.push(`-d ${sh(f.help)}`);
    return parts.join(" ");
  };
  const lines: string[] = [];
  for (const e of all) {
    lines.push(
      `complete -c ${p} -n ${fn}_needs_command -a ${e.name} -d ${
        sh(e.summary)
      }`,
    );
  }
  for (const f of table.globalFlags) lines.push(flagLine(f, ""));
  for (const e of all) {
    const using = `${fn}_using ${e.name}`;
    for (const f of e.flags) lines.push(flagLine(f, using));
    const c = e.complete;
    if (c === "tags") {
      lines.push(`complete -c ${p} -n ${sh(using)} -a '(${fn}_tags)'`);
    } else if (c === "files") {
      lines.push(`complete -c ${p} -n ${sh(using)} -F`);
    } else if (c !== undefined) {
      lines.push(`complete -c ${p} -n ${sh(using)} -a ${sh(c.join(" "))}`);
    }
  }
  return `# fish completion for ${p}
#
# Load it in this shell:    ${p} completion fish | source
# Load it in every shell:   ${p} completion fish > ~/.config/fish/completions/${p}.fish

# Prints the command word: the first that is neither a flag nor a flag's value.
function ${fn}_command
    set -l tokens (commandline -opc)
    set -e tokens[1]
    set -l skip 0
    for t in $tokens
        if test $skip = 1
            set skip 0
            continue
        end
        switch $t
            case ${globalsWithValue.map((s) => sh(s)).join(" ")}
                set skip 1
            case '-*'
            case '*'
                echo $t
                return 0
        end
    end
    return 1
end

function ${fn}_needs_command
    not ${fn}_command >/dev/null
end

function ${fn}_using
    set -l cmd (${fn}_command)
    and test "$cmd" = $argv[1]
end

# Tags of the local store (of --store-path when given), from "list".
function ${fn}_tags
    set -l tokens (commandline -opc)
    set -l store
    for i in (seq (count $tokens))
        switch $tokens[$i]
            case --store-path
                set store --store-path $tokens[(math $i + 1)]
            case '--store-path=*'
                set store $tokens[$i]
        end
    end
    command -q $tokens[1]
    and $tokens[1] $store -q list 2>/dev/null | ${TAGS_AWK}
end

complete -c ${p} -f
${lines.join("\n")}
`;
}

// --- PowerShell ------------------------------------------------------------

/** A PowerShell single-quoted string. */
function ps(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}

function psList(items: readonly string[]): string {
  return `@(${items.map(ps).join(", ")})`;
}

function powershellScript(table: CompletionTable): string {
  const all = entries(table);
  const p = table.program;
  const globalsWithValue = table.globalFlags.filter((f) => f.type !== "boolean")
    .flatMap(spellings);
  const commands = all.map((e) => `        ${ps(e.name)} = ${ps(e.summary)}`)
    .join("\n");
  const flags = all.filter((e) => e.flags.length).map((e) =>
    `        ${ps(e.name)} = ${psList(e.flags.flatMap(spellings))}`
  ).join("\n");
  const values: string[] = [];
  for (const e of all) {
    for (const f of [...table.globalFlags, ...e.flags]) {
      const v = valueOf(f);
      if (v.kind !== "words") continue;
      for (const s of spellings(f)) {
        values.push(`        ${ps(`${e.name} ${s}`)} = ${psList(v.words)}`);
      }
    }
  }
  const args = all.filter((e) => Array.isArray(e.complete)).map((e) =>
    `        ${ps(e.name)} = ${psList(e.complete as readonly string[])}`
  ).join("\n");
  const tagCommands = all.filter((e) => e.complete === "tags").map((e) =>
    e.name
  );
  return `# PowerShell completion for ${p}
#
# Load it in this shell:    ${p} completion powershell | Out-String | Invoke-Expression
# Load it in every shell:   add that line to $PROFILE

Register-ArgumentCompleter -Native -CommandName @(${ps(p)}, ${
    ps(`${p}.exe`)
  }) -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)
    $commands = [ordered]@{
${commands}
    }
    $globalFlags = ${psList(table.globalFlags.flatMap(spellings))}
    $globalsWithValue = ${psList(globalsWithValue)}
    $flags = @{
${flags}
    }
    $values = @{
${values.join("\n")}
    }
    $arguments = @{
${args}
    }
    $tagCommands = ${psList(tagCommands)}

    $words = @($commandAst.CommandElements |
        Where-Object { $_.Extent.EndOffset -le $cursorPosition } |
        ForEach-Object { $_.ToString() })
    if ($wordToComplete -ne '' -and $words.Count -gt 1 -and $words[-1] -eq $wordToComplete) {
        $words = $words[0..($words.Count - 2)]
    }
    $command = ''
    for ($i = 1; $i -lt $words.Count; $i++) {
        $w = $words[$i]
        if ($w -like '-*') {
            if ($globalsWithValue -contains $w) { $i++ }
            continue
        }
        $command = $w
        break
    }
    $previous = if ($words.Count -gt 1) { $words[-1] } else { '' }

    $candidates = @()
    if ($values.Contains("$command $previous")) {
        $candidates = $values["$command $previous"]
    } elseif ($wordToComplete -like '-*') {
        $candidates = $globalFlags + @($flags[$command])
    } elseif ($command -eq '') {
        $candidates = @($commands.Keys)
    } elseif ($arguments.Contains($command)) {
        $candidates = $arguments[$command]
    } elseif ($tagCommands -contains $command) {
        $candidates = @(& $words[0] -q list 2>$null | Select-Object -Skip 1 | ForEach-Object {
            $f = -split $_
            if ($f.Count -gt 1 -and $f[1] -ne '<none>') { "$($f[0]):$($f[1])" }
        })
    }
    $candidates | Where-Object { $_ -and $_ -like "$wordToComplete*" } |
        Sort-Object -Unique | ForEach-Object {
            $tip = if ($commands.Contains($_)) { $commands[$_] } else { $_ }
            [System.Management.Automation.CompletionResult]::new($_, $_, 'ParameterValue', $tip)
        }
}
`;
}
