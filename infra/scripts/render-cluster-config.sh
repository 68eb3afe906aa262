#!/usr/bin/env bash
# Fills infra/eksctl/cluster.yaml's double-underscore placeholders and prints
# the result. aws-up.sh runs it with the network stack's outputs; the infra
# tests run it with sample values and validate the result with eksctl's code.
#
#   render-cluster-config.sh CLUSTER REGION VPC_ID SUBNET_ID_1 SUBNET_ID_2
set -euo pipefail

usage() {
	echo "usage: $(basename "$0") CLUSTER REGION VPC_ID SUBNET_ID_1 SUBNET_ID_2" >&2
	exit 2
}
(($# == 5)) || usage

cluster=$1 region=$2 vpc=$3 subnet1=$4 subnet2=$5
template=${OMIKUJI_CLUSTER_TEMPLATE:-$(dirname "${BASH_SOURCE[0]}")/../eksctl/cluster.yaml}

# Every value is checked against a strict pattern, so nothing can break out
# of its place in the YAML.
check() {
	[[ $2 =~ $3 ]] || {
		echo "$(basename "$0"): $1 '$2' is not valid (want $4)" >&2
		exit 2
	}
}
check cluster "$cluster" '^[a-zA-Z][a-zA-Z0-9-]{0,99}$' "letters, digits and '-', starting with a letter"
check region "$region" '^[a-z]{2}(-[a-z]+)+-[0-9]+$' "a region name such as ap-northeast-1"
check "VPC id" "$vpc" '^vpc-[0-9a-f]{8,17}$' "vpc-<hex>"
check "subnet id" "$subnet1" '^subnet-[0-9a-f]{8,17}$' "subnet-<hex>"
check "subnet id" "$subnet2" '^subnet-[0-9a-f]{8,17}$' "subnet-<hex>"
[[ $subnet1 != "$subnet2" ]] || {
	echo "$(basename "$0"): the two subnets must differ" >&2
	exit 2
}

config=$(<"$template")
config=${config//__CLUSTER_NAME__/$cluster}
config=${config//__REGION__/$region}
config=${config//__VPC_ID__/$vpc}
config=${config//__PUBLIC_SUBNET_1_ID__/$subnet1}
config=${config//__PUBLIC_SUBNET_2_ID__/$subnet2}

if [[ $config =~ __[A-Z0-9_]+__ ]]; then
	echo "$(basename "$0"): $template has a placeholder this script does not fill: ${BASH_REMATCH[0]}" >&2
	exit 1
fi
printf '%s\n' "$config"
