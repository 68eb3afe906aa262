#!/usr/bin/env bash
# make aws-down: delete everything aws-up created, in the order that lets
# each part go — the Service first (the AWS Load Balancer Controller then
# removes the NLB and its security groups, which would otherwise keep the
# VPC from being deleted), then the cluster, then the registry and the
# network — and confirm that nothing is left. Safe to re-run.
#
# Environment: AWS_REGION (or AWS_DEFAULT_REGION, or the profile's region),
# OMIKUJI_CLUSTER (default omikuji).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_tools aws eksctl kubectl
LB_GONE_TIMEOUT_SECONDS=300
require_cluster_name
resolve_region
require_credentials
echo "account $ACCOUNT_ID, region $REGION, cluster $CLUSTER"

if cluster_exists; then
	step app "delete Service $SERVICE (releases the load balancer), then namespace $NAMESPACE"
	eksctl utils write-kubeconfig --cluster "$CLUSTER" --region "$REGION"
	# The load balancer controller's finalizer holds the deletion until it
	# has deleted the NLB, so --wait means that much is gone.
	kubectl -n "$NAMESPACE" delete service "$SERVICE" --ignore-not-found --wait --timeout 10m
	kubectl delete namespace "$NAMESPACE" --ignore-not-found --wait --timeout 10m

	step loadbalancer "wait until the controller has removed the NLB and its security groups"
	# The controller must still run for this, so it goes with the cluster.
	left=
	for ((waited = 0; waited <= LB_GONE_TIMEOUT_SECONDS; waited += 10)); do
		left=$(load_balancer_leftovers)
		[[ -n $left ]] || break
		sleep 10
	done
	[[ -z $left ]] || die "after $((LB_GONE_TIMEOUT_SECONDS / 60)) minutes still there:$left; see 'kubectl -n kube-system logs deployment/aws-load-balancer-controller', then re-run make aws-down"
	echo "no load balancer or controller security group left"

	step cluster "delete EKS cluster $CLUSTER (about 10 minutes)"
	# Pods are deleted, not evicted: the whole cluster goes, so honouring
	# PodDisruptionBudgets (which could stall the drain) buys nothing.
	eksctl delete cluster --name "$CLUSTER" --region "$REGION" --disable-nodegroup-eviction --wait
else
	step cluster "no cluster $CLUSTER in $REGION; nothing to delete there"
fi

step registry "delete stack $ECR_STACK (the repository and its images)"
delete_stack "$ECR_STACK"

step network "delete stack $NETWORK_STACK"
delete_stack "$NETWORK_STACK"

step confirm "nothing is left"
left=()
for stack in "$ECR_STACK" "$NETWORK_STACK"; do
	[[ $(stack_status "$stack") == NONE ]] || left+=("stack $stack")
done
# eksctl names its own stacks eksctl-<cluster>-cluster, -nodegroup-*, -podidentityrole-*, ...
eksctl_stacks=$(aws cloudformation list-stacks \
	--query "StackSummaries[?StackStatus!='DELETE_COMPLETE' && starts_with(StackName, 'eksctl-$CLUSTER-')].StackName" \
	--output text)
for stack in $eksctl_stacks; do
	[[ $stack == None ]] || left+=("stack $stack")
done
if cluster_exists; then
	left+=("cluster $CLUSTER")
fi
lb_left=$(load_balancer_leftovers)
[[ -z $lb_left ]] || left+=("${lb_left# }")
if ((${#left[@]})); then
	die "still there: ${left[*]}; re-run make aws-down, or delete them in the CloudFormation console"
fi
echo "nothing left: no cluster $CLUSTER, no stacks $ECR_STACK, $NETWORK_STACK or eksctl-$CLUSTER-*, no load balancer or security group of the controller in $REGION"
