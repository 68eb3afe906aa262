// Package cli holds what the two commands, omikuji and kubectl-omikuji,
// do alike: arguments anywhere among the flags, and report files written
// whole or not at all.
package cli

import "flag"

// Parse parses args with fs, whose arguments may come before, between or
// after the flags, as kubectl's and curl's do (the flag package stops at
// the first one), and returns the arguments that are not flags, in order. Its error is fs.Parse's:
// flag.ErrHelp for -h, after fs has printed its usage.
func Parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return positional, nil
		}
		positional = append(positional, fs.Arg(0))
		rest = fs.Args()[1:]
	}
}
