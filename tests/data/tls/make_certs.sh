#!/bin/sh
# Regenerate the test certificates in this folder with the openssl CLI.
#
#   ca.pem                  "ogpu-ipfs Test CA", the CA the TLS tests trust
#   server.pem, server.key  its leaf for IP:127.0.0.1 and DNS:localhost
#   wrong_host.pem, .key    its leaf for DNS:wrong-host.invalid only (hostname mismatch)
#   other_ca.pem            an unrelated CA that nothing here is signed by...
#   other_server.pem, .key  ...except this leaf for 127.0.0.1 / localhost (wrong CA)
#   capath/<hash>.0         ca.pem again, named the way c_rehash names it (SSL_CERT_DIR)
#
# Everything is valid for 100 years.  The extensions are the ones that
# Python 3.13's default VERIFY_X509_STRICT requires: on a CA, basicConstraints
# critical CA:TRUE, keyUsage keyCertSign and a subject key identifier; on a
# leaf, an authority key identifier, a subjectAltName and extendedKeyUsage
# serverAuth.  The CA private keys are thrown away: nothing else is ever
# signed with them, and rerunning this script makes a new set.
#
# Usage: sh tests/data/tls/make_certs.sh   (from anywhere)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
days=36525
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cat >"$work/ext.cnf" <<'CNF'
[ ca ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[ server ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
subjectAltName = IP:127.0.0.1, DNS:localhost

[ wrong_host ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
subjectAltName = DNS:wrong-host.invalid
CNF

# make_ca NAME "SUBJECT": a self-signed CA, key kept in $work only.
make_ca() {
    openssl req -x509 -new -newkey rsa:2048 -nodes -sha256 -days "$days" \
        -subj "$2" -keyout "$work/$1.key" -out "$here/$1.pem" \
        -config "$work/ext.cnf" -extensions ca 2>/dev/null
}

# make_leaf NAME CA SECTION "SUBJECT": a leaf signed by CA with the extensions of SECTION.
make_leaf() {
    openssl req -new -newkey rsa:2048 -nodes -sha256 -subj "$4" \
        -keyout "$here/$1.key" -out "$work/$1.csr" 2>/dev/null
    openssl x509 -req -sha256 -days "$days" -in "$work/$1.csr" \
        -CA "$here/$2.pem" -CAkey "$work/$2.key" -set_serial "0x$(openssl rand -hex 16)" \
        -extfile "$work/ext.cnf" -extensions "$3" -out "$here/$1.pem" 2>/dev/null
}

make_ca ca "/O=ogpu-ipfs tests/CN=ogpu-ipfs Test CA"
make_ca other_ca "/O=ogpu-ipfs tests/CN=ogpu-ipfs Unrelated Test CA"
make_leaf server ca server "/O=ogpu-ipfs tests/CN=127.0.0.1"
make_leaf wrong_host ca wrong_host "/O=ogpu-ipfs tests/CN=wrong-host.invalid"
make_leaf other_server other_ca server "/O=ogpu-ipfs tests/CN=127.0.0.1"

rm -rf "$here/capath"
mkdir "$here/capath"
cp "$here/ca.pem" "$here/capath/$(openssl x509 -hash -noout -in "$here/ca.pem").0"

openssl verify -CAfile "$here/ca.pem" "$here/server.pem" "$here/wrong_host.pem"
openssl verify -CAfile "$here/other_ca.pem" "$here/other_server.pem"
