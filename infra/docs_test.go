package infra

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestDocsMatchTheConfig keeps docs/aws.md's numbers in step with the
// cluster config, the single source of those facts.
func TestDocsMatchTheConfig(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(repoRoot(t), "docs", "aws.md"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := sampleClusterConfig(t)
	ng := cfg.ManagedNodeGroups[0]
	major, minor, _ := strings.Cut(cfg.Metadata.Version, ".")
	m, _ := strconv.Atoi(minor)
	want := []string{
		fmt.Sprintf("metadata.version: %q", cfg.Metadata.Version),
		fmt.Sprintf("Kubernetes %s", cfg.Metadata.Version),
		fmt.Sprintf("kubectl** within one minor version of the cluster (%s.%d–%s.%d)", major, m-1, major, m+1),
		fmt.Sprintf("`%s`, Amazon Linux 2023,\n  min %d / desired %d / max %d", ng.InstanceType, *ng.MinSize, *ng.DesiredCapacity, *ng.MaxSize),
		fmt.Sprintf("grow to %d", *ng.MaxSize),
		"`" + ng.Name + "`",
		"`omikuji-network`", "`omikuji-ecr`", "`omikuji/fortune`",
		"upgradePolicy.supportType: " + cfg.UpgradePolicy.SupportType,
		fmt.Sprintf("| **Total** | **%d** |", podsToPlace()),
	}
	for _, s := range want {
		if !strings.Contains(string(doc), s) {
			t.Errorf("docs/aws.md does not say %q", s)
		}
	}
}
