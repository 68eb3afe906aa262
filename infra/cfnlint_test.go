package infra

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// cfn-lint's exit status is a bit field.
const (
	cfnLintFatal   = 1
	cfnLintError   = 2
	cfnLintWarning = 4
	cfnLintInfo    = 8
)

// The regions the templates are checked against: the default one and the
// original article's.
var lintRegions = []string{"us-east-1", "ap-northeast-1"}

func cfnLint(t *testing.T, template string) result {
	t.Helper()
	bin := requireTool(t, "cfn-lint", "AWS's CloudFormation linter; it comes preinstalled on these machines and cannot be installed offline")
	args := append([]string{"--format", "parseable", "--regions"}, lintRegions...)
	return run(t, ".", nil, "", bin, append(args, "--", template)...)
}

func TestTemplatesPassCfnLint(t *testing.T) {
	templates, err := filepath.Glob("cloudformation/*.yaml")
	if err != nil || len(templates) < 2 {
		t.Fatalf("want the network and ecr templates, found %v (%v)", templates, err)
	}
	for _, tmpl := range templates {
		t.Run(filepath.Base(tmpl), func(t *testing.T) {
			t.Parallel()
			r := cfnLint(t, tmpl)
			if r.code&(cfnLintFatal|cfnLintError) != 0 {
				t.Fatalf("cfn-lint found errors in %s:\n%s", tmpl, r)
			}
			if r.code&(cfnLintWarning|cfnLintInfo) != 0 {
				t.Logf("cfn-lint warnings for %s (not failing):\n%s", tmpl, r.stdout)
			}
		})
	}
}

// TestCfnLintCatchesBrokenTemplates breaks the real templates in the ways a
// hand edit does and checks that the lint names each mistake. Each break is
// a replacement that must apply exactly once, so the cases cannot silently
// drift away from the templates.
func TestCfnLintCatchesBrokenTemplates(t *testing.T) {
	cases := []struct {
		name, template, old, new string
		rule, mentions           string
	}{
		{
			name: "misspelled property", template: "network.yaml",
			old: "EnableDnsHostnames: true", new: "EnableDnsHostname: true",
			rule: "E3002", mentions: "'EnableDnsHostname' was unexpected",
		},
		{
			name: "dangling Ref", template: "network.yaml",
			old: "      GatewayId: !Ref InternetGateway\n", new: "      GatewayId: !Ref InternetGatway\n",
			rule: "E1020", mentions: "'InternetGatway' is not one of",
		},
		{
			name: "bad GetAtt attribute", template: "ecr.yaml",
			old: "!GetAtt Repository.RepositoryUri", new: "!GetAtt Repository.RepoUri",
			rule: "E6101", mentions: "'RepoUri' is not one of",
		},
		{
			name: "missing required property", template: "network.yaml",
			old: "      RouteTableId: !Ref PublicRouteTable\n      DestinationCidrBlock", new: "      DestinationCidrBlock",
			rule: "E3003", mentions: "'RouteTableId' is a required property",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src, err := os.ReadFile(filepath.Join("cloudformation", tc.template))
			if err != nil {
				t.Fatal(err)
			}
			if n := strings.Count(string(src), tc.old); n != 1 {
				t.Fatalf("%s: the text to break occurs %d times, want once: %q", tc.template, n, tc.old)
			}
			broken := filepath.Join(t.TempDir(), tc.template)
			if err := os.WriteFile(broken, []byte(strings.Replace(string(src), tc.old, tc.new, 1)), 0o644); err != nil {
				t.Fatal(err)
			}
			r := cfnLint(t, broken)
			if r.code&cfnLintError == 0 {
				t.Fatalf("cfn-lint passed a template with a %s:\n%s", tc.name, r)
			}
			// parseable format: file:line:col:line:col:RULE:message
			var found string
			for _, line := range strings.Split(r.stdout, "\n") {
				if strings.Contains(line, ":"+tc.rule+":") && strings.Contains(line, tc.mentions) {
					found = line
					break
				}
			}
			if found == "" {
				t.Fatalf("want a %s finding mentioning %q:\n%s", tc.rule, tc.mentions, r)
			}
			if !strings.HasPrefix(found, broken+":") {
				t.Errorf("finding does not point at the file and line: %s", found)
			}
			t.Logf("caught: %s", strings.TrimPrefix(found, filepath.Dir(broken)+"/"))
		})
	}
}
