# shellcheck shell=bash disable=SC2034 # the names are used by the scripts that source this
# Shared by aws-up.sh and aws-down.sh: names, preflight checks and
# CloudFormation helpers. Sourced, never run.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
INFRA="$ROOT/infra"

CLUSTER=${OMIKUJI_CLUSTER:-omikuji}
NETWORK_STACK=omikuji-network
ECR_STACK=omikuji-ecr
NAMESPACE=omikuji
SERVICE=omikuji
SERVICE_PORT=8080

# AWS CLI v2 would page long output; these scripts read it.
export AWS_PAGER=""

PROG=$(basename "$0" .sh)
CURRENT_STEP=preflight

die() {
	echo "$PROG: error: $*" >&2
	exit 1
}

# step announces the next named step; after a failure, finish names it.
step() {
	CURRENT_STEP=$1
	echo
	echo "==> $1: $2"
}

# finish runs on every exit: it removes the scratch directory and, after a
# failure, names the step that stopped the run.
WORK=
finish() {
	local rc=$?
	[[ -z $WORK ]] || rm -rf "$WORK"
	if ((rc != 0)); then
		echo "$PROG: stopped in step '$CURRENT_STEP' (exit $rc); nothing after it ran. Fix the cause above and re-run: every step is safe to repeat." >&2
	fi
	exit "$rc"
}
trap finish EXIT

# require_tools fails with one message naming every missing command.
require_tools() {
	local missing=() tool
	for tool in "$@"; do
		command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
	done
	if ((${#missing[@]})); then
		die "missing tools: ${missing[*]} (install them as docs/aws.md describes)"
	fi
}

# resolve_region sets REGION from AWS_REGION, AWS_DEFAULT_REGION or the
# profile's configuration, and exports it for every tool that follows.
resolve_region() {
	REGION=${AWS_REGION:-${AWS_DEFAULT_REGION:-}}
	if [[ -z $REGION ]]; then
		REGION=$(aws configure get region 2>/dev/null || true)
	fi
	[[ -n $REGION ]] || die "no AWS region: set AWS_REGION (e.g. export AWS_REGION=ap-northeast-1) or 'region' in your AWS profile"
	[[ $REGION =~ ^[a-z]{2}(-[a-z]+)+-[0-9]+$ ]] || die "AWS region '$REGION' does not look like a region name (e.g. ap-northeast-1)"
	export AWS_REGION=$REGION AWS_DEFAULT_REGION=$REGION
}

# require_credentials sets ACCOUNT_ID, or explains how to sign in.
require_credentials() {
	local out
	if ! out=$(aws sts get-caller-identity --query Account --output text 2>&1); then
		die "no usable AWS credentials (${out//$'\n'/ }). Sign in with IAM Identity Center: 'aws sso login' (see docs/aws.md)"
	fi
	ACCOUNT_ID=$out
	[[ $ACCOUNT_ID =~ ^[0-9]{12}$ ]] || die "unexpected account id from 'aws sts get-caller-identity': $ACCOUNT_ID"
}

require_cluster_name() {
	[[ $CLUSTER =~ ^[a-zA-Z][a-zA-Z0-9-]{0,99}$ ]] || die "cluster name '$CLUSTER' (OMIKUJI_CLUSTER): use letters, digits and '-', starting with a letter"
}

# stack_status prints a stack's status, or NONE when it does not exist.
stack_status() {
	local out
	if out=$(aws cloudformation describe-stacks --stack-name "$1" --query 'Stacks[0].StackStatus' --output text 2>&1); then
		echo "$out"
	elif [[ $out == *"does not exist"* ]]; then
		echo NONE
	else
		die "describing stack $1: $out"
	fi
}

stack_output() {
	local value
	value=$(aws cloudformation describe-stacks --stack-name "$1" \
		--query "Stacks[0].Outputs[?OutputKey=='$2'].OutputValue" --output text)
	[[ -n $value && $value != None ]] || die "stack $1 has no output $2"
	echo "$value"
}

stack_failures() {
	aws cloudformation describe-stack-events --stack-name "$1" \
		--query "StackEvents[?ends_with(ResourceStatus, 'FAILED')].[LogicalResourceId, ResourceStatus, ResourceStatusReason]" \
		--output text 2>/dev/null | head -n 10 >&2 || true
}

# deploy_stack creates or updates a stack and waits for it; running it again
# with nothing changed is a no-op. Parameters come as Key=Value.
deploy_stack() {
	local name=$1 template=$2
	shift 2
	local params=() kv out status
	for kv in "$@"; do
		params+=("ParameterKey=${kv%%=*},ParameterValue=${kv#*=}")
	done
	local common=(--stack-name "$name" --template-body "file://$template" --tags "Key=project,Value=omikuji")
	((${#params[@]})) && common+=(--parameters "${params[@]}")

	status=$(stack_status "$name")
	case $status in
	ROLLBACK_COMPLETE)
		# A first creation that failed leaves an empty stack that can only be deleted.
		echo "stack $name is ROLLBACK_COMPLETE from an earlier failed creation; deleting it first"
		delete_stack "$name"
		status=NONE
		;;
	*_IN_PROGRESS)
		die "stack $name is $status; wait until it finishes, then re-run"
		;;
	esac

	if [[ $status == NONE ]]; then
		echo "creating stack $name"
		aws cloudformation create-stack "${common[@]}" >/dev/null
		if ! aws cloudformation wait stack-create-complete --stack-name "$name"; then
			stack_failures "$name"
			die "creating stack $name failed (events above)"
		fi
	elif stack_is_current "$name" "$template" "$@"; then
		echo "stack $name is up to date"
	else
		if ! out=$(aws cloudformation update-stack "${common[@]}" 2>&1); then
			if [[ $out == *"No updates are to be performed"* ]]; then
				echo "stack $name is up to date"
				return 0
			fi
			die "updating stack $name: $out"
		fi
		echo "updating stack $name"
		if ! aws cloudformation wait stack-update-complete --stack-name "$name"; then
			stack_failures "$name"
			die "updating stack $name failed (events above)"
		fi
	fi
}

# stack_is_current tells whether a stack already runs this template with
# these Key=Value parameters, so that an unchanged re-run updates nothing.
stack_is_current() {
	local name=$1 template=$2 kv deployed
	shift 2
	deployed=$(aws cloudformation get-template --stack-name "$name" --query TemplateBody --output text) || return 1
	[[ $deployed == "$(<"$template")" ]] || return 1
	for kv in "$@"; do
		deployed=$(aws cloudformation describe-stacks --stack-name "$name" \
			--query "Stacks[0].Parameters[?ParameterKey=='${kv%%=*}'].ParameterValue" --output text) || return 1
		[[ $deployed == "${kv#*=}" ]] || return 1
	done
}

# delete_stack deletes a stack if it exists and waits until it is gone.
delete_stack() {
	local name=$1
	if [[ $(stack_status "$name") == NONE ]]; then
		echo "stack $name: already gone"
		return 0
	fi
	echo "deleting stack $name"
	aws cloudformation delete-stack --stack-name "$name"
	if ! aws cloudformation wait stack-delete-complete --stack-name "$name"; then
		stack_failures "$name"
		die "deleting stack $name failed (events above)"
	fi
}

# platform_for_instance_type names the image platform an EC2 instance type
# runs: Graviton families carry a 'g' after the generation digit (t4g, m7g,
# c7gn, x2gd, im4gn); the others are x86-64.
platform_for_instance_type() {
	if [[ $1 =~ ^[a-z]+[0-9]+[a-z]*g[a-z]*\. ]]; then
		echo linux/arm64
	else
		echo linux/amd64
	fi
}

# Zone IDs in which EKS does not create clusters (the EKS user guide's
# subnet requirements; eksctl v0.230 avoids the same ones, pkg/az/az.go).
# Zone IDs, not names: which ID a name such as us-east-1a stands for differs
# from account to account.
EKS_UNSUPPORTED_ZONE_IDS=(use1-az3 usw1-az2 cac1-az3)

# pick_zones sets ZONE_1 and ZONE_2 to the first two Availability Zones, by
# name, of the region whose zone IDs EKS supports, or stops if there are
# fewer than two.
pick_zones() {
	local out name id picked=() skipped=()
	out=$(aws ec2 describe-availability-zones \
		--filters Name=state,Values=available Name=zone-type,Values=availability-zone \
		--query 'sort_by(AvailabilityZones, &ZoneName)[].[ZoneName, ZoneId]' --output text) ||
		die "cannot list the Availability Zones of $REGION"
	while read -r name id; do
		[[ -n $name && $name != None ]] || continue
		if [[ " ${EKS_UNSUPPORTED_ZONE_IDS[*]} " == *" $id "* ]]; then
			skipped+=("$name ($id)")
		else
			picked+=("$name")
		fi
	done <<<"$out"
	if ((${#skipped[@]})); then
		echo "not using ${skipped[*]}: EKS does not support that zone ID"
	fi
	if ((${#picked[@]} < 2)); then
		die "$REGION has ${#picked[@]} Availability Zone(s) whose zone IDs EKS supports (${picked[*]:-none}; skipped: ${skipped[*]:-none}); EKS needs subnets in two. Choose another region with AWS_REGION"
	fi
	ZONE_1=${picked[0]} ZONE_2=${picked[1]}
}

# load_balancer_leftovers prints, space-separated, what the AWS Load
# Balancer Controller made for this cluster and has not removed: load
# balancers in the network stack's VPC and security groups with its
# elbv2.k8s.aws/cluster tag. Nothing means nothing is left.
load_balancer_leftovers() {
	local vpc lbs sgs out=
	if [[ $(stack_status "$NETWORK_STACK") != NONE ]]; then
		vpc=$(stack_output "$NETWORK_STACK" VpcId)
		lbs=$(aws elbv2 describe-load-balancers --query "LoadBalancers[?VpcId=='$vpc'].LoadBalancerName" --output text) ||
			die "cannot list the load balancers in $REGION"
		[[ -z $lbs || $lbs == None ]] || out+=" load balancer $lbs"
	fi
	sgs=$(aws ec2 describe-security-groups --filters "Name=tag:elbv2.k8s.aws/cluster,Values=$CLUSTER" \
		--query 'SecurityGroups[].GroupId' --output text) || die "cannot list the security groups in $REGION"
	[[ -z $sgs || $sgs == None ]] || out+=" security group $sgs"
	echo "$out"
}

# cluster_exists asks eksctl, which also knows clusters it did not create.
cluster_exists() {
	eksctl get cluster --name "$CLUSTER" --region "$REGION" >/dev/null 2>&1
}
