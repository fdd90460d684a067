#!/usr/bin/env bash
# A certificate authority for the fabric, with openssl only.
#
#   pki.sh init DIR
#       Makes DIR/ca.crt and DIR/ca.key (EC P-256, ten years). Refuses to
#       overwrite an existing CA.
#   pki.sh issue DIR manager NAME [--host HOST]... [--days N]
#   pki.sh issue DIR node NODE [--host HOST]... [--days N]
#   pki.sh issue DIR user NAME [--role admin|operator|scheduler|viewer]
#                              [--days N]
#       Writes DIR/KIND-NAME.crt and DIR/KIND-NAME.key (EC P-256, signed by
#       DIR's CA, valid N days, default 365), replacing any earlier pair of
#       that name (each file by an atomic rename: rotation). The certificate
#       carries exactly one URI SAN, spiffe://fabric.local/KIND/NAME, and
#       CN=NAME; a user's role goes into the subject's OU. Manager and node
#       certificates may serve and dial (serverAuth, clientAuth); user
#       certificates only dial (clientAuth).
#       Manager and node certificates also name the hosts they serve on, as
#       DNS or IP SANs, for HTTPS clients that check the host name (curl,
#       Python's requests, against --http-listen): localhost, 127.0.0.1 and
#       ::1, plus each --host (a DNS name or an IP address). The fabric's
#       own clients check the URI SAN instead.
#
# NAME: 1-63 characters of [a-z0-9._-], starting with a letter or digit
# (common/security/identity.h). Private keys are written with mode 0600.
#
# Test-only: `--expired` issues a certificate whose validity ended in 2020
# (TestPki::IssueExpired); nothing outside tests has a use for it.
set -euo pipefail

PROG="$(basename "$0")"
tmp=""

usage() {
  {
    [ $# -gt 0 ] && echo "$PROG: $*"
    echo "usage: $PROG init DIR"
    echo "       $PROG issue DIR manager|node NAME [--host HOST]... [--days N]"
    echo "       $PROG issue DIR user NAME [--role admin|operator|scheduler|viewer] [--days N]"
  } >&2
  exit 2
}

die() {
  echo "$PROG: $*" >&2
  exit 1
}

check_name() {
  local what="$1" name="$2"
  if ! [[ "$name" =~ ^[a-z0-9][a-z0-9._-]{0,62}$ ]]; then
    usage "$what \"$name\" must be 1-63 characters of [a-z0-9._-], starting with a letter or digit"
  fi
}

cmd_init() {
  [ $# -eq 1 ] || usage "init takes exactly one argument, DIR"
  local dir="$1"
  [ -n "$dir" ] || usage "DIR is empty"
  if [ -e "$dir/ca.crt" ] || [ -e "$dir/ca.key" ]; then
    die "DIR $dir already holds a CA (ca.crt/ca.key); refusing to overwrite it"
  fi
  mkdir -p "$dir"
  (
    umask 077
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
      -keyout "$dir/ca.key" -out "$dir/ca.crt" -days 3650 -sha256 \
      -subj "/O=fabric/CN=fabric CA" \
      -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  ) || die "openssl could not make the CA in $dir"
  chmod 0600 "$dir/ca.key"
  chmod 0644 "$dir/ca.crt"
  echo "$PROG: CA written to $dir/ca.crt (key $dir/ca.key)"
}

cmd_issue() {
  [ $# -ge 3 ] || usage "issue takes DIR KIND NAME"
  local dir="$1" kind="$2" name="$3"
  shift 3
  local role="" days=365 expired=0
  local hosts=(localhost 127.0.0.1 ::1)
  while [ $# -gt 0 ]; do
    case "$1" in
      --host)
        [ $# -ge 2 ] || usage "--host needs a value"
        [[ "$2" =~ ^[A-Za-z0-9.:-]+$ ]] ||
          usage "--host \"$2\" is not a host name or an IP address"
        hosts+=("$2")
        shift 2
        ;;
      --role)
        [ $# -ge 2 ] || usage "--role needs a value"
        role="$2"
        shift 2
        ;;
      --days)
        [ $# -ge 2 ] || usage "--days needs a value"
        days="$2"
        shift 2
        ;;
      --expired)
        expired=1
        shift
        ;;
      *)
        usage "unknown argument \"$1\""
        ;;
    esac
  done
  case "$kind" in
    manager | node | user) ;;
    *) usage "KIND \"$kind\" is not manager, node or user" ;;
  esac
  check_name NAME "$name"
  if [ -n "$role" ]; then
    [ "$kind" = user ] || usage "--role is for user certificates only"
    case "$role" in
      admin | operator | scheduler | viewer) ;;
      *) usage "--role \"$role\" is not admin, operator, scheduler or viewer" ;;
    esac
  fi
  [[ "$days" =~ ^[1-9][0-9]{0,4}$ ]] || usage "--days \"$days\" is not a number of days (1-99999)"
  [ -f "$dir/ca.crt" ] && [ -f "$dir/ca.key" ] ||
    die "DIR $dir holds no CA; run: $PROG init $dir"

  local eku="serverAuth,clientAuth"
  [ "$kind" = user ] && eku="clientAuth"
  local san="URI:spiffe://fabric.local/$kind/$name"
  if [ "$kind" = user ]; then
    [ ${#hosts[@]} -eq 3 ] || usage "--host is for manager and node certificates"
  else
    local h
    for h in "${hosts[@]}"; do
      if [[ "$h" =~ ^[0-9.]+$ || "$h" == *:* ]]; then
        san="$san,IP:$h"
      else
        san="$san,DNS:$h"
      fi
    done
  fi
  local subj="/CN=$name"
  [ -n "$role" ] && subj="/OU=$role/CN=$name"

  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  : >"$tmp/index.txt"
  openssl rand -hex 16 >"$tmp/serial"
  cat >"$tmp/ca.cnf" <<CNF
[ ca ]
default_ca = fabric_ca
[ fabric_ca ]
database = $tmp/index.txt
serial = $tmp/serial
new_certs_dir = $tmp
certificate = $dir/ca.crt
private_key = $dir/ca.key
default_md = sha256
policy = policy_any
unique_subject = no
email_in_dn = no
copy_extensions = none
[ policy_any ]
organizationalUnitName = optional
commonName = supplied
CNF
  cat >"$tmp/ext.cnf" <<EXT
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = $eku
subjectAltName = $san
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EXT
  (
    umask 077
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
      -keyout "$tmp/key.pem" -out "$tmp/req.csr" -subj "$subj" 2>/dev/null
  ) || die "openssl could not make a key for $kind/$name"
  local validity=(-days "$days")
  [ "$expired" -eq 1 ] &&
    validity=(-startdate 20200101000000Z -enddate 20200102000000Z)
  openssl ca -batch -notext -preserveDN -config "$tmp/ca.cnf" \
    -extfile "$tmp/ext.cnf" "${validity[@]}" \
    -in "$tmp/req.csr" -out "$tmp/cert.pem" 2>"$tmp/ca.log" ||
    die "openssl could not sign $kind/$name: $(cat "$tmp/ca.log")"
  chmod 0600 "$tmp/key.pem"
  chmod 0644 "$tmp/cert.pem"
  # Same file system as the targets, so that each rename is atomic.
  local base="$dir/$kind-$name"
  cp -p "$tmp/key.pem" "$base.key.tmp"
  cp -p "$tmp/cert.pem" "$base.crt.tmp"
  mv -f "$base.key.tmp" "$base.key"
  mv -f "$base.crt.tmp" "$base.crt"
  echo "$PROG: wrote $base.crt and $base.key (spiffe://fabric.local/$kind/$name)"
}

[ $# -ge 1 ] || usage "missing the command (init or issue)"
command="$1"
shift
case "$command" in
  init) cmd_init "$@" ;;
  issue) cmd_issue "$@" ;;
  -h | --help | help) usage ;;
  *) usage "unknown command \"$command\"" ;;
esac
