// Package infra holds the offline checks of omikuji's AWS infrastructure
// code: the CloudFormation templates (cfn-lint), the eksctl cluster config
// (eksctl's own decoding, defaulting and validation), the aws-up/aws-down
// scripts (shellcheck, and a full run against the moto AWS emulator with
// stand-ins for the tools that need a real account).
//
// It is a module of its own so that eksctl's large dependency graph never
// reaches the omikuji binary.
package infra
