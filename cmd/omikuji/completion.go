package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/omikuji/omikuji/internal/fortune"
	"github.com/omikuji/omikuji/internal/local"
)

const completionUsage = `usage: omikuji completion bash|zsh

Prints the shell's completion script for omikuji: its commands, each
command's flags, and the values of --fortune, --balancer, --log-level and
--method.

  bash, for this shell:  source <(omikuji completion bash)
        for every shell: omikuji completion bash > ~/.local/share/bash-completion/completions/omikuji
  zsh,  for this shell:  source <(omikuji completion zsh)   (after compinit)
        for every shell: omikuji completion zsh > "${fpath[1]}/_omikuji"
`

// completed are the commands a completion offers, with what they do.
var completed = []struct{ name, about string }{
	{"serve", "serve one fortune (what runs in each pod)"},
	{"local", "run every replica and a random L4 balancer on this machine"},
	{"draw", "draw fortunes from a running system and audit the odds"},
	{"version", "print the version, commit and Go version"},
	{"completion", "print the shell's completion script"},
	{"help", "list the commands"},
}

// flagValues are the values a flag takes from a fixed set.
func flagValues() map[string][]string {
	ids := make([]string, len(fortune.Catalogue))
	for i, f := range fortune.Catalogue {
		ids[i] = f.ID
	}
	return map[string][]string{
		"fortune":   ids,
		"balancer":  {local.Random, local.RoundRobin},
		"log-level": {"debug", "info", "warn", "error"},
		"method":    {"GET", "HEAD"},
	}
}

// A completedFlag is one flag of a command as the shell offers it.
type completedFlag struct {
	Name   string   // with its dashes: -n, --addr
	About  string   // the first clause of its usage
	Value  bool     // takes a value
	Values []string // the value's fixed set, if any
}

// A completedCommand is a command and its flags.
type completedCommand struct {
	Name, About string
	Flags       []completedFlag
}

// FreeValues are the flags whose value is not from a fixed set.
func (c completedCommand) FreeValues() []string {
	var names []string
	for _, f := range c.Flags {
		if f.Value && f.Values == nil {
			names = append(names, f.Name)
		}
	}
	return names
}

func runCompletion(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 || (args[0] != "bash" && args[0] != "zsh") {
		if len(args) == 1 && (args[0] == "-h" || args[0] == "--help") {
			fmt.Fprint(stdout, completionUsage)
			return 0
		}
		fmt.Fprintf(stderr, "omikuji completion: want bash or zsh\n\n%s", completionUsage)
		return 2
	}
	var cmds []completedCommand
	for _, c := range completed {
		cmds = append(cmds, completedCommand{Name: c.name, About: c.about, Flags: commandFlags(c.name)})
	}
	if args[0] == "zsh" {
		writeZsh(stdout, cmds)
	} else {
		writeBash(stdout, cmds)
	}
	return 0
}

// flagLine is one flag in flag.PrintDefaults: "  -name type", where a type
// means the flag takes a value, then its usage indented by a tab.
var flagLine = regexp.MustCompile(`(?m)^  -([A-Za-z0-9-]+)(?: (\S+))?(?:\n?\s*\t(.*))?$`)

// defaultsNote is what a flag's usage ends with: its variable, its default.
var defaultsNote = regexp.MustCompile(` \((env|default) [^)]*\)`)

// commandFlags reads a command's flags from its own -h, so that the
// completion can never offer a flag the command does not have.
func commandFlags(name string) []completedFlag {
	if name != "serve" && name != "local" && name != "draw" {
		return nil
	}
	var help bytes.Buffer
	run(context.Background(), []string{name, "-h"}, io.Discard, &help)
	values := flagValues()
	var flags []completedFlag
	for _, m := range flagLine.FindAllStringSubmatch(help.String(), -1) {
		dashes := "--"
		if len(m[1]) == 1 {
			dashes = "-"
		}
		about := defaultsNote.ReplaceAllString(m[3], "")
		flags = append(flags, completedFlag{Name: dashes + m[1], About: about, Value: m[2] != "", Values: values[m[1]]})
	}
	return flags
}

// The scripts are written with fmt, not text/template: a template's method
// calls make the linker keep every exported method of the binary, 6.5 MB.

// writeBash writes the bash script: _omikuji fills COMPREPLY from the
// command, the flag before the cursor, and the word under it.
func writeBash(w io.Writer, cmds []completedCommand) {
	names := make([]string, len(cmds))
	for i, c := range cmds {
		names[i] = c.Name
	}
	fmt.Fprintf(w, `# bash completion for omikuji, written by "omikuji completion bash"
_omikuji() {
	local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} words=""
	if [[ $cur == = ]]; then cur=""; fi
	if [[ $prev == = && $COMP_CWORD -ge 2 ]]; then prev=${COMP_WORDS[COMP_CWORD-2]}; fi
	if [[ $COMP_CWORD -eq 1 ]]; then
		words="%s --version"
	else
		case ${COMP_WORDS[1]} in
`, strings.Join(names, " "))
	for _, c := range cmds {
		fmt.Fprintf(w, "\t\t%s)\n\t\t\tcase $prev in\n", c.Name)
		var all []string
		for _, f := range c.Flags {
			all = append(all, f.Name)
			if f.Values != nil {
				fmt.Fprintf(w, "\t\t\t%s) words=%q ;;\n", f.Name, strings.Join(f.Values, " "))
			}
		}
		if free := c.FreeValues(); free != nil {
			fmt.Fprintf(w, "\t\t\t%s) return ;;\n", strings.Join(free, "|"))
		}
		if c.Name == "completion" {
			all = append(all, "bash", "zsh")
		}
		fmt.Fprintf(w, "\t\t\t*) words=%q ;;\n\t\t\tesac ;;\n", strings.Join(all, " "))
	}
	fmt.Fprint(w, `		esac
	fi
	mapfile -t COMPREPLY < <(compgen -W "$words" -- "$cur")
}
complete -o default -F _omikuji omikuji
`)
}

// writeZsh writes the zsh script: _describe for the commands, _arguments
// for each command's flags. It works from $fpath (#compdef) and sourced.
func writeZsh(w io.Writer, cmds []completedCommand) {
	fmt.Fprint(w, `#compdef omikuji
# zsh completion for omikuji, written by "omikuji completion zsh"
_omikuji() {
	local -a commands
	commands=(
`)
	for _, c := range cmds {
		fmt.Fprintf(w, "\t\t'%s:%s'\n", c.Name, zshQuote(c.About))
	}
	fmt.Fprint(w, `	)
	if (( CURRENT == 2 )); then
		_describe -t commands 'omikuji command' commands
		return
	fi
	local cmd=${words[2]}
	shift words
	(( CURRENT-- ))
	case $cmd in
`)
	for _, c := range cmds {
		fmt.Fprintf(w, "\t%s)\n\t\t_arguments", c.Name)
		for _, f := range c.Flags {
			value := ""
			switch {
			case f.Values != nil:
				value = ":value:(" + strings.Join(f.Values, " ") + ")"
			case f.Value:
				value = ":value:_default"
			}
			fmt.Fprintf(w, " \\\n\t\t\t'%s[%s]%s'", f.Name, zshQuote(f.About), value)
		}
		switch c.Name {
		case "completion":
			fmt.Fprint(w, " '1:shell:(bash zsh)'")
		case "draw":
			fmt.Fprint(w, " '*:URL:_urls'")
		}
		fmt.Fprint(w, " ;;\n")
	}
	fmt.Fprint(w, `	esac
}
if [[ ${funcstack[1]} == _omikuji ]]; then
	_omikuji "$@"
else
	compdef _omikuji omikuji
fi
`)
}

// zshQuote makes s safe in an _arguments description inside single quotes:
// no quote, no bracket, no backslash.
func zshQuote(s string) string {
	return strings.NewReplacer("'", "", "[", "(", "]", ")", `\`, "").Replace(s)
}
