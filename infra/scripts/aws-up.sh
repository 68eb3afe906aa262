#!/usr/bin/env bash
# make aws-up: network → registry → image → cluster → autoscaler →
# loadbalancer → app, then the URL and a first draw. Every step is
# idempotent: re-running after a failure (or with nothing changed) picks up
# where things stand.
#
# Environment:
#   AWS_REGION            region (or AWS_DEFAULT_REGION, or the profile's region)
#   OMIKUJI_CLUSTER       cluster name (default omikuji)
#   OMIKUJI_ENHANCED_SCANNING  "true": ECR enhanced scanning (Amazon Inspector,
#                         billed per image; see docs/aws.md). Default false.
#   OMIKUJI_IMAGE_TAG     image tag (default: g<commit>[-dirty-<time>])
#   OMIKUJI_IMAGE_TOOL    path of an executable that builds and pushes the
#                         image, taking the arguments of tools/image (one
#                         word: no arguments of its own); unset: go run ./tools/image
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Chart 9.59.0, the newest, still defaults to Cluster Autoscaler 1.35; the
# values set image.tag to the autoscaler whose minor matches metadata.version
# in infra/eksctl/cluster.yaml (tests check both).
AUTOSCALER_CHART_VERSION=9.59.0
AUTOSCALER_VALUES="$ROOT/deploy/helm/cluster-autoscaler-values.yaml"
# The AWS Load Balancer Controller, which gives the Service its NLB.
LBC_CHART_VERSION=3.5.0
LBC_VALUES="$ROOT/deploy/helm/aws-load-balancer-controller-values.yaml"
APP_OVERLAY="$ROOT/deploy/kustomize/overlays/eks"
# The image name the eks overlay uses as a placeholder; the app step points
# it at the ECR repository.
APP_IMAGE_PLACEHOLDER=ACCOUNT.dkr.ecr.REGION.amazonaws.com/omikuji/fortune
ROLLOUT_TIMEOUT=15m
LB_TIMEOUT_SECONDS=600

image_tool() {
	if [[ -n ${OMIKUJI_IMAGE_TOOL:-} ]]; then
		"$OMIKUJI_IMAGE_TOOL" "$@"
	else
		(cd "$ROOT" && go run ./tools/image "$@")
	fi
}

# The image is one OCI index of both platforms, so node groups of either
# kind, or mixed ones, pull the image that runs on them.
IMAGE_PLATFORMS=linux/amd64,linux/arm64

# check_image_platforms makes sure every node group's instance type runs a
# platform the index has.
check_image_platforms() {
	local type platform types
	types=$(sed -n 's/^ *instanceType: *\([a-z0-9.-]*\).*/\1/p' "$INFRA/eksctl/cluster.yaml")
	[[ -n $types ]] || die "no instanceType in infra/eksctl/cluster.yaml"
	while read -r type; do
		platform=$(platform_for_instance_type "$type")
		[[ ,$IMAGE_PLATFORMS, == *,$platform,* ]] || die "instance type $type runs $platform, which the image ($IMAGE_PLATFORMS) lacks"
	done <<<"$types"
}

default_image_tag() {
	local sha
	sha=$(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null) || die "not a git checkout: set OMIKUJI_IMAGE_TAG"
	if [[ -n $(git -C "$ROOT" status --porcelain 2>/dev/null) ]]; then
		# The repository's tags are immutable: a dirty tree gets a fresh tag.
		echo "g$sha-dirty-$(date -u +%Y%m%d%H%M%S)"
	else
		echo "g$sha"
	fi
}

# relative_path prints a path from directory $1 up to / and down to $2:
# kustomize refuses absolute paths to other kustomizations.
relative_path() {
	local up='' dir=$1
	while [[ $dir != / ]]; do
		up+=../
		dir=$(dirname "$dir")
	done
	echo "$up${2#/}"
}

# --- preflight: tools, region, credentials — before anything is created ---
require_tools aws eksctl kubectl helm curl git "${OMIKUJI_IMAGE_TOOL:-go}"
require_cluster_name
[[ -f $AUTOSCALER_VALUES ]] || die "missing $AUTOSCALER_VALUES"
[[ -f $LBC_VALUES ]] || die "missing $LBC_VALUES"
ENHANCED_SCANNING=${OMIKUJI_ENHANCED_SCANNING:-false}
[[ $ENHANCED_SCANNING == true || $ENHANCED_SCANNING == false ]] || die "OMIKUJI_ENHANCED_SCANNING='$ENHANCED_SCANNING': want true or false"
[[ -d $APP_OVERLAY ]] || die "missing $APP_OVERLAY"
resolve_region
require_credentials
IMAGE_TAG=${OMIKUJI_IMAGE_TAG:-$(default_image_tag)}
[[ $IMAGE_TAG =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || die "image tag '$IMAGE_TAG' is not a valid tag"
echo "account $ACCOUNT_ID, region $REGION, cluster $CLUSTER, image tag $IMAGE_TAG"

WORK=$(cd "$(mktemp -d)" && pwd -P)

step network "stack $NETWORK_STACK (VPC, two public subnets in zones EKS supports)"
pick_zones
echo "Availability Zones $ZONE_1 and $ZONE_2"
deploy_stack "$NETWORK_STACK" "$INFRA/cloudformation/network.yaml" "ClusterName=$CLUSTER" \
	"AvailabilityZone1=$ZONE_1" "AvailabilityZone2=$ZONE_2"
VPC_ID=$(stack_output "$NETWORK_STACK" VpcId)
SUBNET_1=$(stack_output "$NETWORK_STACK" PublicSubnet1Id)
SUBNET_2=$(stack_output "$NETWORK_STACK" PublicSubnet2Id)
echo "VPC $VPC_ID, subnets $SUBNET_1 $SUBNET_2"

step registry "stack $ECR_STACK (ECR repository)"
deploy_stack "$ECR_STACK" "$INFRA/cloudformation/ecr.yaml" "EnhancedScanning=$ENHANCED_SCANNING"
REPOSITORY=$(stack_output "$ECR_STACK" RepositoryName)
REPOSITORY_URI=$(stack_output "$ECR_STACK" RepositoryUri)
IMAGE="$REPOSITORY_URI:$IMAGE_TAG"

step image "build and push $IMAGE ($IMAGE_PLATFORMS)"
if aws ecr describe-images --repository-name "$REPOSITORY" --image-ids "imageTag=$IMAGE_TAG" >/dev/null 2>&1; then
	echo "$IMAGE is already in the registry"
else
	check_image_platforms
	# The commit time dates every file and the image, so the same commit
	# always gives the same index digest.
	SOURCE_DATE_EPOCH=$(git -C "$ROOT" log -1 --format=%ct) image_tool build --oci "$WORK/omikuji-oci" \
		--tag "omikuji:$IMAGE_TAG" --platform "$IMAGE_PLATFORMS" \
		--version "$IMAGE_TAG" --revision "$(git -C "$ROOT" rev-parse HEAD)"
	aws ecr get-login-password |
		image_tool push --oci "$WORK/omikuji-oci" --to "$IMAGE" --username AWS --password-stdin
fi

step cluster "EKS cluster $CLUSTER (eksctl; about 15 minutes the first time)"
"$INFRA/scripts/render-cluster-config.sh" "$CLUSTER" "$REGION" "$VPC_ID" "$SUBNET_1" "$SUBNET_2" >"$WORK/cluster.yaml"
if cluster_exists; then
	# Both commands skip what exists, so they only add what an interrupted
	# first run or a new config entry left missing.
	echo "cluster $CLUSTER exists; adding only missing addons and node groups"
	eksctl utils write-kubeconfig --cluster "$CLUSTER" --region "$REGION"
	eksctl create addon -f "$WORK/cluster.yaml"
	eksctl create nodegroup -f "$WORK/cluster.yaml"
else
	eksctl create cluster -f "$WORK/cluster.yaml"
fi

step autoscaler "Cluster Autoscaler (Helm chart $AUTOSCALER_CHART_VERSION)"
helm repo add autoscaler https://kubernetes.github.io/autoscaler --force-update
helm upgrade --install cluster-autoscaler autoscaler/cluster-autoscaler \
	--namespace kube-system --version "$AUTOSCALER_CHART_VERSION" \
	-f "$AUTOSCALER_VALUES" \
	--set "autoDiscovery.clusterName=$CLUSTER" --set "awsRegion=$REGION" \
	--wait --timeout 10m

step loadbalancer "AWS Load Balancer Controller (Helm chart $LBC_CHART_VERSION)"
helm repo add eks https://aws.github.io/eks-charts --force-update
helm upgrade --install aws-load-balancer-controller eks/aws-load-balancer-controller \
	--namespace kube-system --version "$LBC_CHART_VERSION" \
	-f "$LBC_VALUES" \
	--set "clusterName=$CLUSTER" --set "region=$REGION" --set "vpcId=$VPC_ID" \
	--wait --timeout 10m

step app "the fortunes and their LoadBalancer Service"
mkdir "$WORK/app"
cat >"$WORK/app/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - $(relative_path "$WORK/app" "$APP_OVERLAY")
images:
  - name: $APP_IMAGE_PLACEHOLDER
    newName: $REPOSITORY_URI
    newTag: "$IMAGE_TAG"
EOF
kubectl apply -k "$WORK/app"
deployments=$(kubectl -n "$NAMESPACE" get deployments -o name)
[[ -n $deployments ]] || die "no Deployments in namespace $NAMESPACE after apply"
for d in $deployments; do
	kubectl -n "$NAMESPACE" rollout status "$d" --timeout "$ROLLOUT_TIMEOUT"
done

echo "waiting for the load balancer's address (up to $((LB_TIMEOUT_SECONDS / 60)) minutes)"
host=
for ((waited = 0; waited < LB_TIMEOUT_SECONDS; waited += 10)); do
	host=$(kubectl -n "$NAMESPACE" get service "$SERVICE" -o jsonpath='{.status.loadBalancer.ingress[0].hostname}')
	[[ -z $host ]] || break
	sleep 10
done
[[ -n $host ]] || die "service $SERVICE has no load balancer address after $((LB_TIMEOUT_SECONDS / 60)) minutes; see 'kubectl -n $NAMESPACE describe service $SERVICE'"
[[ $host =~ ^[A-Za-z0-9.-]+$ ]] || die "unexpected load balancer address '$host'"
URL="http://$host:$SERVICE_PORT/"

step draw "a first draw from $URL (the new DNS name takes a few minutes to resolve)"
curl --silent --show-error --fail --max-time 10 \
	--retry 40 --retry-delay 15 --retry-all-errors \
	-H 'Accept: text/plain' "$URL"
echo
echo "omikuji is up: $URL"
echo "tear everything down with: make aws-down"
