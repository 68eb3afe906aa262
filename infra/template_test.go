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
		// The zone is a parameter aws-up chooses (zone IDs EKS supports),
		// never a fixed name or !GetAZs, which may pick one EKS refuses.
		param := "AvailabilityZone" + strconv.Itoa(i+1)
		if az := at(t, props, "AvailabilityZone"); az.Tag != "!Ref" || az.Value != param {
			t.Errorf("%s AvailabilityZone: want !Ref %s", name, param)
		}
		if typ := at(t, network, "Parameters", param, "Type").Value; typ != "AWS::EC2::AvailabilityZone::Name" {
			t.Errorf("parameter %s: type %s, want AWS::EC2::AvailabilityZone::Name", param, typ)
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

	ecrTemplate := loadTemplate(t, "ecr.yaml")
	ecr := at(t, ecrTemplate, "Resources", "Repository", "Properties")
	for path, want := range map[string]string{
		"ImageTagMutability":                     "IMMUTABLE",
		"EncryptionConfiguration.EncryptionType": "AES256",
		"EmptyOnDelete":                          "true",
	} {
		if got := at(t, ecr, strings.Split(path, ".")...).Value; got != want {
			t.Errorf("Repository %s = %q, want %q", path, got, want)
		}
	}
	// Basic scanning reads OS packages, and the image has none: a scan on
	// push would always come back empty. Scanning that means something is
	// enhanced scanning, opt-in because Amazon Inspector bills per image.
	for i := 0; i+1 < len(ecr.Content); i += 2 {
		if ecr.Content[i].Value == "ImageScanningConfiguration" {
			t.Error("Repository ImageScanningConfiguration: basic scan on push finds nothing in an image without OS packages; leave it out")
		}
	}
	if d := at(t, ecrTemplate, "Parameters", "EnhancedScanning", "Default").Value; d != "false" {
		t.Errorf("EnhancedScanning default %q: want \"false\", it costs money", d)
	}
	scanning := at(t, ecrTemplate, "Resources", "RegistryScanning")
	if c := at(t, scanning, "Condition").Value; c != "Enhanced" {
		t.Errorf("RegistryScanning: condition %q, want Enhanced", c)
	}
	if st := at(t, scanning, "Properties", "ScanType").Value; st != "ENHANCED" {
		t.Errorf("RegistryScanning ScanType %q, want ENHANCED", st)
	}
	rules := at(t, scanning, "Properties", "Rules").Content
	if len(rules) != 1 {
		t.Fatalf("RegistryScanning: %d rules, want one, for this repository only", len(rules))
	}
	filters := at(t, rules[0], "RepositoryFilters").Content
	if len(filters) != 1 || at(t, filters[0], "Filter").Tag != "!Ref" || at(t, filters[0], "Filter").Value != "RepositoryName" {
		t.Errorf("RegistryScanning rule: want one repository filter, !Ref RepositoryName (never the whole registry)")
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
