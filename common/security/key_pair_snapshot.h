// KeyPairSnapshot: a program's certificate and private key as one
// consistent pair, for gRPC's certificate file watcher.
//
// gRPC's FileWatcherCertificateProvider (1.51) reads the key and the
// certificate as two files and uses whatever it read. A rotation replaces
// them one after the other (deploy/pki.sh renames each into place), so a
// read between the two renames hands it a new key with the old certificate,
// and every handshake fails until its next read. The watcher is therefore
// pointed at a snapshot: one private file holding the certificate chain and
// the key, which a background thread rewrites (by rename, so a reader sees
// the old or the new file, never a mix) only when the two files on disk
// belong together.
//
//   std::string pem = KeyPairSnapshot::PathFor(tls.cert_file, tls.key_file);
//   FileWatcherCertificateProvider(pem, pem, tls.ca_file, 1);
//
// Process-wide: one thread polls every registered pair (a stat of each file
// every kPollInterval; they are read only when one changed). Snapshots live
// in a private directory (mode 0700, files 0600) under $TMPDIR, removed at
// exit. Thread-safe.
#ifndef FABRIC_COMMON_SECURITY_KEY_PAIR_SNAPSHOT_H_
#define FABRIC_COMMON_SECURITY_KEY_PAIR_SNAPSHOT_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace fabric::security {

class KeyPairSnapshot {
 public:
  static constexpr absl::Duration kPollInterval = absl::Milliseconds(200);

  // The snapshot file of (cert_file, key_file), written now from the files
  // as they are (whether or not they match: CheckTransport is what refuses
  // a mismatched pair at startup) and kept up to date from then on. The
  // same pair always gets the same path. INTERNAL when the snapshot cannot
  // be written.
  static absl::StatusOr<std::string> PathFor(const std::string& cert_file,
                                             const std::string& key_file);

  // Whether the PEM key in `key_pem` is the private key of the first
  // certificate in `cert_pem`.
  static bool Matches(const std::string& cert_pem, const std::string& key_pem);
};

}  // namespace fabric::security

#endif  // FABRIC_COMMON_SECURITY_KEY_PAIR_SNAPSHOT_H_
