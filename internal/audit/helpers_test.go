package audit

import "github.com/omikuji/omikuji/internal/fortune"

// omikujiAudit is how the draw command judges omikuji with --expect expect.
func omikujiAudit(o Options, expect fortune.Counts, alpha float64) Audit {
	e, err := ParseExpect(expect.String(), BackendSpec{Kind: KindOmikuji}, GroupSpec{})
	if err != nil {
		panic(err)
	}
	return Audit{Options: o, Expect: e, Alpha: alpha}
}

// OmikujiAudit is omikujiAudit for the tests outside the package.
var OmikujiAudit = omikujiAudit
