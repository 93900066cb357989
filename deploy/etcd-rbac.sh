#!/usr/bin/env bash
# Sets up etcd's RBAC for topowall's cluster mode, with etcdctl (package etcd-client):
#   one etcd user and role per node: read everything under the root, write only its own endpoints
#   (<root>endpoints/<node>/) and its own ranges (<root>ranges/<node>);
#   one operator role: read everything, write decisions (<root>decisions/); agents only read them.
#
# Usage (etcdctl finds etcd through its own environment: ETCDCTL_ENDPOINTS, ETCDCTL_CACERT,
# ETCDCTL_CERT, ETCDCTL_KEY; with --client-cert-auth the certificates must carry no common name,
# because etcd's JSON gateway, which topowall speaks, refuses one once auth is on):
#   deploy/etcd-rbac.sh node NODE...        a user and role per node; its password in $SECRETS/NODE.password
#   deploy/etcd-rbac.sh operator USER...    users of the role topowall-operator (decisions)
#   deploy/etcd-rbac.sh enable              creates root (password in $SECRETS/root.password), auth enable
# Passwords are generated when their file does not exist yet (mode 0600). Copy NODE.password to that node
# and start topowalld with --node-name NODE --cluster-password-file FILE --cluster-range CIDR.
# Re-running is safe: existing users keep their passwords, grants are repeated.
set -euo pipefail

ROOT=${TOPOWALL_ETCD_ROOT:-/topowall/v1/}
SECRETS=${TOPOWALL_ETCD_SECRETS:-/etc/topowall/etcd}
OPERATOR_ROLE=topowall-operator

die() { echo "etcd-rbac: $*" >&2; exit 1; }
command -v etcdctl >/dev/null || die "etcdctl not found: install etcd-client"
[[ $ROOT == /*/ ]] || die "TOPOWALL_ETCD_ROOT '$ROOT' must start and end with /"

# Once auth is on, every call needs root: its password goes through etcdctl's environment, not argv.
# Whether it is on is asked once (an anonymous request fails only then).
AUTH_ON=
auth_on() {
  [[ -n $AUTH_ON ]] || { etcdctl user list >/dev/null 2>&1 && AUTH_ON=no || AUTH_ON=yes; }
  [[ $AUTH_ON == yes ]]
}
ctl() {
  if [[ -f $SECRETS/root.password ]] && auth_on; then
    ETCDCTL_USER=root ETCDCTL_PASSWORD="$(cat "$SECRETS/root.password")" etcdctl "$@"
  else
    etcdctl "$@"
  fi
}

password_of() {  # prints the password of $1, generating it the first time
  local f=$SECRETS/$1.password
  if [[ ! -f $f ]]; then
    mkdir -p "$SECRETS" && chmod 700 "$SECRETS"
    (umask 077 && openssl rand -hex 24 >"$f")
  fi
  cat "$f"
}

ensure_user() {  # user $1 with its password file
  local pw
  pw=$(password_of "$1")
  if ! ctl user get "$1" >/dev/null 2>&1; then
    ctl user add "$1" --new-user-password="$pw" >/dev/null
  fi
}

ensure_role() {
  ctl role get "$1" >/dev/null 2>&1 || ctl role add "$1" >/dev/null
}

valid_name() { [[ $1 =~ ^[A-Za-z0-9._-]+$ ]] || die "'$1' is not a valid node or user name"; }

node() {
  local n=$1 role=topowall-node-$1
  valid_name "$n"
  ensure_user "$n"
  ensure_role "$role"
  ctl role grant-permission "$role" read --prefix=true "$ROOT" >/dev/null
  ctl role grant-permission "$role" readwrite --prefix=true "${ROOT}endpoints/$n/" >/dev/null
  ctl role grant-permission "$role" readwrite "${ROOT}ranges/$n" >/dev/null
  ctl user grant-role "$n" "$role" >/dev/null
  echo "node $n: user $n, role $role (password in $SECRETS/$n.password)"
}

operator() {
  local u=$1
  valid_name "$u"
  ensure_user "$u"
  ensure_role "$OPERATOR_ROLE"
  ctl role grant-permission "$OPERATOR_ROLE" read --prefix=true "$ROOT" >/dev/null
  ctl role grant-permission "$OPERATOR_ROLE" readwrite --prefix=true "${ROOT}decisions/" >/dev/null
  ctl user grant-role "$u" "$OPERATOR_ROLE" >/dev/null
  echo "operator $u: role $OPERATOR_ROLE (password in $SECRETS/$u.password)"
}

enable() {
  ensure_user root
  ctl user grant-role root root >/dev/null 2>&1 || true  # already granted on a re-run
  if ! auth_on; then
    ctl auth enable >/dev/null
    AUTH_ON=yes
  fi
  echo "auth enabled; root's password in $SECRETS/root.password"
}

cmd=${1:-}
shift || true
case $cmd in
  node | operator)
    (($#)) || die "usage: $0 $cmd NAME..."
    for n in "$@"; do "$cmd" "$n"; done
    ;;
  enable) enable ;;
  *) die "usage: $0 node NODE... | operator USER... | enable" ;;
esac
