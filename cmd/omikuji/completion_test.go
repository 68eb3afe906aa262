package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestCompletionUsage(t *testing.T) {
	for _, args := range [][]string{{"completion"}, {"completion", "fish"}, {"completion", "bash", "zsh"}} {
		if code, stdout, stderr := runCmd(args...); code != 2 || stdout != "" || !strings.Contains(stderr, "omikuji completion: want bash or zsh") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, stdout, stderr)
		}
	}
	if code, stdout, _ := runCmd("completion", "-h"); code != 0 || !strings.Contains(stdout, "source <(omikuji completion bash)") {
		t.Errorf("completion -h: exit %d, stdout %q", code, stdout)
	}
}

// requireShell finds a shell the test drives, or skips (fails under CI).
func requireShell(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI must test the %s completion: %v (scripts/deps.sh installs it)", name, err)
		}
		t.Skipf("no %s here (scripts/deps.sh installs it): %v", name, err)
	}
	return path
}

// completionCases are command lines (the cursor at the end) and some of
// what the shell must offer there.
var completionCases = []struct {
	line string
	want []string
}{
	{"omikuji ", []string{"serve", "local", "draw", "version", "completion"}},
	{"omikuji dr", []string{"draw"}},
	{"omikuji serve --fo", []string{"--fortune"}},
	{"omikuji serve --fortune ", []string{"great-fortune", "middle-fortune", "small-fortune", "misfortune"}},
	{"omikuji serve --log-level w", []string{"warn"}},
	{"omikuji local --", []string{"--addr", "--metrics-addr", "--balancer", "--replicas", "--seed", "--keep-alive"}},
	{"omikuji local --balancer ", []string{"random", "round-robin"}},
	{"omikuji draw http://127.0.0.1:8080/ --j", []string{"--json"}},
	{"omikuji draw -", []string{"-n", "-c", "-H", "--watch", "--html", "--expect", "--tests"}},
	{"omikuji draw --method ", []string{"GET", "HEAD"}},
	{"omikuji completion ", []string{"bash", "zsh"}},
}

// TestBashCompletion sources the generated script in a real bash, checks
// that it is registered for omikuji, and asks it what it offers on each
// line, as bash does on Tab (COMP_WORDS split at the cursor).
func TestBashCompletion(t *testing.T) {
	bash := requireShell(t, "bash")
	bin := omikujiBinary(t)
	script := filepath.Join(t.TempDir(), "omikuji.bash")
	out, err := exec.Command(bin, "completion", "bash").Output()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(script, out, 0o644); err != nil {
		t.Fatal(err)
	}
	if sc, err := exec.LookPath("shellcheck"); err == nil {
		if out, err := exec.Command(sc, "-s", "bash", script).CombinedOutput(); err != nil {
			t.Errorf("shellcheck of the bash completion: %v\n%s", err, out)
		}
	}
	// complete_at LINE prints what _omikuji offers with the cursor at the
	// end of LINE, one per line, after a line "--".
	driver := `source "$1" || exit 1
complete -p omikuji
complete_at() {
	read -r -a COMP_WORDS <<<"$1"
	if [[ $1 == *" " ]]; then COMP_WORDS+=(""); fi
	COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
	COMP_LINE=$1 COMP_POINT=${#1}
	COMPREPLY=()
	_omikuji
	echo --
	printf '%s\n' "${COMPREPLY[@]}"
}
complete_at "$2"
`
	for _, tc := range completionCases {
		cmd := exec.Command(bash, "--norc", "--noprofile", "-c", driver, "bash", script, tc.line)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%q: %v\n%s", tc.line, err, out)
		}
		registered, offered, _ := strings.Cut(string(out), "--\n")
		if strings.TrimSpace(registered) != "complete -o default -F _omikuji omikuji" {
			t.Fatalf("complete -p omikuji: %q", registered)
		}
		got := strings.Fields(offered)
		for _, w := range tc.want {
			if !slices.Contains(got, w) {
				t.Errorf("bash, %q<Tab>: offers %q, not %q", tc.line, got, w)
			}
		}
		if prefix := lastWord(tc.line); prefix != "" {
			for _, g := range got {
				if !strings.HasPrefix(g, prefix) {
					t.Errorf("bash, %q<Tab>: offers %q, which does not start with %q", tc.line, g, prefix)
				}
			}
		}
	}
}

// TestZshCompletion loads the generated script into an interactive zsh on
// a pseudo-terminal (zsh/zpty) after compinit, presses Tab on each line and
// records every candidate the completion system is handed.
func TestZshCompletion(t *testing.T) {
	zsh := requireShell(t, "zsh")
	bin := omikujiBinary(t)
	script := filepath.Join(t.TempDir(), "_omikuji")
	out, err := exec.Command(bin, "completion", "zsh").Output()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(script, out, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(zsh, "-n", script).CombinedOutput(); err != nil {
		t.Fatalf("zsh -n: %v\n%s", err, out)
	}
	// The inner shell prints each candidate as <<word>>; compadd -O only
	// collects, the real compadd then completes as usual.
	driver := `zmodload zsh/zpty || exit 1
zpty -b z zsh -f -i
zpty -w z 'PS1="> "; autoload -U compinit; compinit -u -d "$ZDOTDIR/.zcompdump"'
zpty -w z "source ${(q)1}"
zpty -w z 'compadd() { local -a hits; builtin compadd -O hits "$@"; (( $#hits )) && print -rl -- "<<"${^hits}">>"; builtin compadd "$@"; }'
zpty -w z 'print -r -- ${_comps[omikuji]}-$((6*7))'
zpty -r z registered '*_omikuji-42*' || { print no registration; exit 1 }
zpty -n -w z "$2"$'\t'
# zle finishes the Tab before it reads on: Ctrl-U, then a command whose
# output marks the end of the candidates.
zpty -w z $'\x15print -r -- END-$((6*7))'
zpty -r z all '*END-42*' || { print no end; exit 1 }
print -r -- "$all"
zpty -d z
`
	for _, tc := range completionCases {
		t.Run(tc.line, func(t *testing.T) {
			t.Parallel() // compinit takes seconds on a busy machine
			cmd := exec.Command(zsh, "-f", "-c", driver, "zsh", script, tc.line)
			cmd.Env = append(os.Environ(), "ZDOTDIR="+t.TempDir(), "TERM=dumb")
			cmd.WaitDelay = 5 * time.Second
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			var got []string
			for _, f := range strings.Split(string(out), "<<")[1:] {
				if w, _, ok := strings.Cut(f, ">>"); ok {
					got = append(got, w)
				}
			}
			for _, w := range tc.want {
				if !slices.Contains(got, w) {
					t.Errorf("zsh, %q<Tab>: offers %q, not %q", tc.line, got, w)
				}
			}
		})
	}
}

func lastWord(line string) string {
	if strings.HasSuffix(line, " ") {
		return ""
	}
	f := strings.Fields(line)
	return f[len(f)-1]
}
