package cli

import (
	"errors"
	"flag"
	"io"
	"slices"
	"testing"
)

func TestParseTakesArgumentsAnywhere(t *testing.T) {
	for _, tc := range []struct {
		args       []string
		positional []string
		n          int
		json       bool
	}{
		{[]string{"http://a/"}, []string{"http://a/"}, 0, false},
		{[]string{"http://a/", "-n", "5", "--json"}, []string{"http://a/"}, 5, true},
		{[]string{"-n", "5", "http://a/", "--json"}, []string{"http://a/"}, 5, true},
		{[]string{"--json", "-n", "5", "http://a/"}, []string{"http://a/"}, 5, true},
		{[]string{"one", "-n", "7", "two"}, []string{"one", "two"}, 7, false},
		{nil, nil, 0, false},
	} {
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		n := fs.Int("n", 0, "")
		asJSON := fs.Bool("json", false, "")
		got, err := Parse(fs, tc.args)
		if err != nil || !slices.Equal(got, tc.positional) || *n != tc.n || *asJSON != tc.json {
			t.Errorf("%q: positional %q, -n %d, --json %v, err %v; want %q, %d, %v",
				tc.args, got, *n, *asJSON, err, tc.positional, tc.n, tc.json)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		help bool
	}{
		{[]string{"http://a/", "-h"}, true},
		{[]string{"http://a/", "-n", "many"}, false},
		{[]string{"http://a/", "--nope"}, false},
	} {
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		fs.Int("n", 0, "")
		got, err := Parse(fs, tc.args)
		if err == nil || errors.Is(err, flag.ErrHelp) != tc.help || got != nil {
			t.Errorf("%q: positional %q, err %v; want an error (help %v)", tc.args, got, err, tc.help)
		}
	}
}
