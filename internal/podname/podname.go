// Package podname is the one rule for a backend's name, which a replica
// shows in every answer and the auditor counts draws by: 1 to Max bytes of
// printable UTF-8, so that a name stays one line in every report.
package podname

import (
	"errors"
	"fmt"
	"unicode"
	"unicode/utf8"
)

// Max is the longest name: Kubernetes' longest object name (a DNS
// subdomain), and the most the auditor keeps for any backend.
const Max = 253

// Check reports what is wrong with name, or nil.
func Check(name string) error {
	switch {
	case name == "":
		return errors.New("empty name")
	case len(name) > Max:
		return fmt.Errorf("name longer than %d bytes", Max)
	case !Printable(name):
		return errors.New("name has unprintable characters")
	}
	return nil
}

// Printable reports whether s is valid UTF-8 made only of printable
// characters (unicode.IsPrint: no control characters, no line breaks).
func Printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}
