package cli

import (
	"io"
	"os"
	"path/filepath"
)

// WriteFile writes a report through a temporary file in the same directory,
// renamed into place, so that a failed write leaves no half a file and an
// existing one as it was.
func WriteFile(path string, write func(io.Writer) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".omikuji-report-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // fails harmlessly after the rename
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
