package infra

import (
	"encoding/json"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// loadTemplate parses a CloudFormation template into YAML nodes, which keep
// short-form tags such as !Ref and !GetAZs.
func loadTemplate(t *testing.T, name string) *yaml.Node {
	t.Helper()
	b, err := os.ReadFile("cloudformation/" + name)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return doc.Content[0]
}

// at walks mapping keys; it fails the test when a key is missing.
func at(t *testing.T, n *yaml.Node, path ...string) *yaml.Node {
	t.Helper()
	for i, key := range path {
		var next *yaml.Node
		if n.Kind == yaml.MappingNode {
			for j := 0; j+1 < len(n.Content); j += 2 {
				if n.Content[j].Value == key {
					next = n.Content[j+1]
				}
			}
		}
		if next == nil {
			t.Fatalf("template has no %s", strings.Join(path[:i+1], "."))
		}
		n = next
	}
	return n
}

// TestTemplateSettings checks the settings that moto accepts but does not
// emulate, so the flow test cannot see them.
func TestTemplateSettings(t *testing.T) {
	network := loadTemplate(t, "network.yaml")
	res := at(t, network, "Resources")
	for _, p := range []string{"EnableDnsSupport", "EnableDnsHostnames"} {
		if v := at(t, res, "Vpc", "Properties", p).Value; v != "true" {
			t.Errorf("Vpc %s = %q, want true (EKS nodes need VPC DNS)", p, v)
		}
	}
	vpc := netip.MustParsePrefix(at(t, network, "Parameters", "VpcCidr", "Default").Value)
	var subnets []netip.Prefix
	for i, name := range []string{"PublicSubnet1", "PublicSubnet2"} {
		props := at(t, res, name, "Properties")
		if v := at(t, props, "MapPublicIpOnLaunch").Value; v != "true" {
			t.Errorf("%s MapPublicIpOnLaunch = %q: managed node groups in public subnets need it", name, v)
		}
		az := at(t, props, "AvailabilityZone")
		if az.Tag != "!Select" || len(az.Content) != 2 || az.Content[0].Value != strconv.Itoa(i) || az.Content[1].Tag != "!GetAZs" {
			t.Errorf("%s AvailabilityZone: want !Select [%d, !GetAZs \"\"], not a hard-coded zone", name, i)
		}
		tags := map[string]string{}
		for _, tag := range at(t, props, "Tags").Content {
			tags[at(t, tag, "Key").Value] = at(t, tag, "Value").Value
		}
		if tags["kubernetes.io/role/elb"] != "1" || tags["kubernetes.io/cluster/${ClusterName}"] != "shared" {
			t.Errorf("%s tags %v: want kubernetes.io/role/elb=1 and kubernetes.io/cluster/${ClusterName}=shared", name, tags)
		}
		cidr := netip.MustParsePrefix(at(t, network, "Parameters", name+"Cidr", "Default").Value)
		if !vpc.Contains(cidr.Addr()) || cidr.Bits() < vpc.Bits() {
			t.Errorf("%s default %s lies outside the VPC's %s", name, cidr, vpc)
		}
		// The VPC CNI gives every pod an address: leave room for many.
		if cidr.Bits() > 22 {
			t.Errorf("%s default %s: want /22 or larger, pods take subnet addresses", name, cidr)
		}
		subnets = append(subnets, cidr)
	}
	if subnets[0].Overlaps(subnets[1]) {
		t.Errorf("default subnets %v overlap", subnets)
	}
	for _, out := range []string{"VpcId", "PublicSubnet1Id", "PublicSubnet2Id"} {
		at(t, network, "Outputs", out, "Export", "Name")
	}

	ecr := at(t, loadTemplate(t, "ecr.yaml"), "Resources", "Repository", "Properties")
	for path, want := range map[string]string{
		"ImageTagMutability":                     "IMMUTABLE",
		"ImageScanningConfiguration.ScanOnPush":  "true",
		"EncryptionConfiguration.EncryptionType": "AES256",
		"EmptyOnDelete":                          "true",
	} {
		if got := at(t, ecr, strings.Split(path, ".")...).Value; got != want {
			t.Errorf("Repository %s = %q, want %q", path, got, want)
		}
	}
	// The lifecycle policy is JSON inside YAML: check that it parses and
	// that every rule expires something.
	policy := at(t, ecr, "LifecyclePolicy", "LifecyclePolicyText").Value
	policy = strings.ReplaceAll(policy, "${KeepImages}", "20")
	var lifecycle struct {
		Rules []struct {
			RulePriority int
			Action       struct{ Type string }
		}
	}
	if err := json.Unmarshal([]byte(policy), &lifecycle); err != nil || len(lifecycle.Rules) == 0 {
		t.Fatalf("lifecycle policy is not valid JSON with rules: %v\n%s", err, policy)
	}
	for _, r := range lifecycle.Rules {
		if r.RulePriority < 1 || r.Action.Type != "expire" {
			t.Errorf("lifecycle rule %+v: want a priority and action expire", r)
		}
	}
}
