#include "common/http/http_server.h"

#include <httplib.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/host_port.h"
#include "common/listen_probe.h"
#include "common/security/certificate.h"
#include "common/security/key_pair_snapshot.h"

namespace fabric::http {
namespace {

// The program's certificate chain and key, re-read from their snapshot
// (KeyPairSnapshot) when it changes, and installed on every handshake by
// OpenSSL's certificate callback.
class CertificateSource {
 public:
  // `ca_file`: the CA bundle client certificates must chain to, re-read
  // likewise.
  CertificateSource(std::string snapshot, std::string ca_file)
      : snapshot_(std::move(snapshot)), ca_file_(std::move(ca_file)) {}
  ~CertificateSource() {
    Clear();
    X509_STORE_free(ca_store_);
  }

  // Installs the current pair on `ssl`; 1 on success (OpenSSL's cert_cb
  // convention), 0 to fail the handshake.
  static int Callback(SSL* ssl, void* self) {
    return static_cast<CertificateSource*>(self)->Install(ssl) ? 1 : 0;
  }

  // Reads the snapshot now; false when it holds no certificate and key.
  bool Load() {
    absl::MutexLock lock(&mu_);
    return RefreshLocked();
  }

  // Reads the CA bundle now; false when it holds no certificate.
  bool LoadCa() {
    absl::MutexLock lock(&mu_);
    RefreshCaLocked();
    return ca_store_ != nullptr;
  }

 private:
  bool Install(SSL* ssl) {
    absl::MutexLock lock(&mu_);
    if (!RefreshLocked()) return false;
    RefreshCaLocked();
    // The client's certificate is verified after this callback, against
    // this connection's store.
    if (ca_store_ == nullptr ||
        SSL_set1_verify_cert_store(ssl, ca_store_) != 1) {
      return false;
    }
    return SSL_use_cert_and_key(ssl, cert_, key_, chain_, /*override=*/1) == 1;
  }

  // Re-reads the CA bundle when its modification time or size changed;
  // keeps the last good store when the file is missing or holds no
  // certificate.
  void RefreshCaLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    struct stat st;
    if (::stat(ca_file_.c_str(), &st) != 0) return;
    if (ca_store_ != nullptr && st.st_mtim.tv_sec == ca_mtime_.tv_sec &&
        st.st_mtim.tv_nsec == ca_mtime_.tv_nsec && st.st_size == ca_size_) {
      return;
    }
    X509_STORE* store = X509_STORE_new();
    if (store == nullptr || X509_STORE_load_file(store, ca_file_.c_str()) != 1 ||
        sk_X509_OBJECT_num(X509_STORE_get0_objects(store)) == 0) {
      X509_STORE_free(store);
      ERR_clear_error();
      return;
    }
    X509_STORE_free(ca_store_);
    ca_store_ = store;
    ca_mtime_ = st.st_mtim;
    ca_size_ = st.st_size;
  }

  // Re-reads the snapshot when its modification time or size changed.
  bool RefreshLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    struct stat st;
    if (::stat(snapshot_.c_str(), &st) != 0) return cert_ != nullptr;
    if (cert_ != nullptr && st.st_mtim.tv_sec == mtime_.tv_sec &&
        st.st_mtim.tv_nsec == mtime_.tv_nsec && st.st_size == size_) {
      return true;
    }
    BIO* bio = BIO_new_file(snapshot_.c_str(), "r");
    if (bio == nullptr) return cert_ != nullptr;
    X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
    STACK_OF(X509)* chain = sk_X509_new_null();
    EVP_PKEY* key = nullptr;
    // The rest of the snapshot: the chain's other certificates, then the
    // key (KeyPairSnapshot writes the chain first).
    while (X509* more = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
      sk_X509_push(chain, more);
    }
    ERR_clear_error();
    BIO_free(bio);
    bio = BIO_new_file(snapshot_.c_str(), "r");
    if (bio != nullptr) {
      key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
      BIO_free(bio);
    }
    ERR_clear_error();
    if (cert == nullptr || key == nullptr) {
      X509_free(cert);
      EVP_PKEY_free(key);
      sk_X509_pop_free(chain, X509_free);
      return cert_ != nullptr;  // keep the last good pair
    }
    Clear();
    cert_ = cert;
    key_ = key;
    chain_ = chain;
    mtime_ = st.st_mtim;
    size_ = st.st_size;
    return true;
  }

  void Clear() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    X509_free(cert_);
    EVP_PKEY_free(key_);
    if (chain_ != nullptr) sk_X509_pop_free(chain_, X509_free);
    cert_ = nullptr;
    key_ = nullptr;
    chain_ = nullptr;
  }

  const std::string snapshot_;
  const std::string ca_file_;
  absl::Mutex mu_;
  X509_STORE* ca_store_ ABSL_GUARDED_BY(mu_) = nullptr;
  struct timespec ca_mtime_ ABSL_GUARDED_BY(mu_) = {};
  off_t ca_size_ ABSL_GUARDED_BY(mu_) = 0;
  X509* cert_ ABSL_GUARDED_BY(mu_) = nullptr;
  EVP_PKEY* key_ ABSL_GUARDED_BY(mu_) = nullptr;
  STACK_OF(X509)* chain_ ABSL_GUARDED_BY(mu_) = nullptr;
  struct timespec mtime_ ABSL_GUARDED_BY(mu_) = {};
  off_t size_ ABSL_GUARDED_BY(mu_) = 0;
};

// Only SO_REUSEADDR: a port another socket listens on is refused.
void ListenerSocketOptions(socket_t sock) {
  int yes = 1;
  setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
}

HttpRequest Convert(const httplib::Request& in, bool tls) {
  HttpRequest out;
  out.method = in.method;
  out.path = in.path;
  out.body = in.body;
  out.tls = tls;
  // The query string only: cpp-httplib also parses a form-encoded body into
  // `params`, and curl -d sends JSON as a form unless told otherwise.
  const size_t q = in.target.find('?');
  if (q != std::string::npos) {
    httplib::Params params;
    httplib::detail::parse_query_text(in.target.substr(q + 1), params);
    for (const auto& [k, v] : params) out.query.emplace(k, v);
  }
  for (const auto& [k, v] : in.headers) {
    out.headers.emplace(absl::AsciiStrToLower(k), v);
  }
  if (tls && in.ssl != nullptr) {
    X509* peer = SSL_get1_peer_certificate(in.ssl);
    if (peer == nullptr) {
      out.peer = absl::UnauthenticatedError("the peer sent no certificate");
    } else {
      absl::StatusOr<security::Identity> id =
          security::CertificateIdentity(peer);
      X509_free(peer);
      out.peer = id.ok() ? std::move(id)
                         : absl::UnauthenticatedError(absl::StrCat(
                               "the peer's certificate ", id.status().message()));
    }
  }
  return out;
}

// Whether the peer of `ssl`'s socket may still be there: false once it
// closed its side (FIN) or reset the connection, seen without reading
// (POLLRDHUP). Bytes it sent are not read here and do not count. nullptr
// (plaintext, whose socket httplib does not expose): always true.
bool PeerConnected(const SSL* ssl) {
  if (ssl == nullptr) return true;
  struct pollfd p = {};
  p.fd = SSL_get_fd(ssl);
  p.events = POLLRDHUP;
  if (p.fd < 0 || ::poll(&p, 1, 0) <= 0) return p.fd >= 0;
  return (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) == 0;
}

void Respond(HttpResponse response, const SSL* ssl, httplib::Response* out) {
  out->status = response.status;
  for (const auto& [k, v] : response.headers) out->set_header(k, v);
  if (!response.stream) {
    out->set_content(response.body, response.content_type);
    return;
  }
  auto stream = std::move(response.stream);
  out->set_chunked_content_provider(
      response.content_type,
      [stream = std::move(stream), ssl](size_t, httplib::DataSink& sink) {
        stream([&sink, ssl](absl::string_view chunk) {
          if (chunk.empty()) return sink.is_writable() && PeerConnected(ssl);
          return sink.is_writable() && sink.write(chunk.data(), chunk.size());
        });
        sink.done();
        return true;
      });
}

}  // namespace

struct HttpServer::Impl {
  std::unique_ptr<CertificateSource> certificates;  // TLS only
  std::unique_ptr<httplib::Server> server;
  std::thread thread;
  int port = 0;
  bool stopped = false;
};

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() { Shutdown(); }

int HttpServer::port() const { return impl_->port; }

void HttpServer::Shutdown() {
  if (impl_->stopped) return;
  impl_->stopped = true;
  impl_->server->stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(
    const HttpServerOptions& options, HttpHandler handler) {
  if (options.threads < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        options.flag, ": threads is ", options.threads, "; it must be >= 1"));
  }
  absl::StatusOr<HostPort> address = ParseHostPort(options.flag, options.listen);
  if (!address.ok()) return address.status();
  if (absl::Status s = security::CheckTransport(options.flag, options.tls,
                                                options.listen);
      !s.ok()) {
    return s;
  }
  if (address->port != 0) {
    if (absl::Status s = ProbeListen(options.flag, *address); !s.ok()) {
      return absl::UnavailableError(s.message());
    }
  }

  auto impl = std::make_unique<Impl>();
  const bool tls = !options.tls.insecure;
  if (tls) {
    absl::StatusOr<std::string> snapshot = security::KeyPairSnapshot::PathFor(
        options.tls.cert_file, options.tls.key_file);
    if (!snapshot.ok()) return snapshot.status();
    impl->certificates =
        std::make_unique<CertificateSource>(*snapshot, options.tls.ca_file);
    if (!impl->certificates->Load()) {
      return absl::FailedPreconditionError(
          absl::StrCat(options.flag, ": cannot read the certificate ",
                       options.tls.cert_file, " and key ",
                       options.tls.key_file));
    }
    if (!impl->certificates->LoadCa()) {
      return absl::FailedPreconditionError(absl::StrCat(
          options.flag, ": cannot use the CA ", options.tls.ca_file));
    }
    CertificateSource* certificates = impl->certificates.get();
    // The CA store is set per connection by the certificate callback
    // (CertificateSource::Install), so the context loads none of its own.
    impl->server = std::make_unique<httplib::SSLServer>(
        [certificates](SSL_CTX& ctx) {
          SSL_CTX_set_min_proto_version(&ctx, TLS1_2_VERSION);
          SSL_CTX_set_cert_cb(&ctx, &CertificateSource::Callback,
                              certificates);
          SSL_CTX_set_verify(
              &ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
          return true;
        });
    if (!impl->server->is_valid()) {
      return absl::InternalError(absl::StrCat(
          options.flag, ": cannot set up TLS (OpenSSL refused the context)"));
    }
  } else {
    impl->server = std::make_unique<httplib::Server>();
  }
  httplib::Server& server = *impl->server;
  server.set_socket_options(ListenerSocketOptions);
  server.set_tcp_nodelay(true);
  // A connection serves up to this many requests before it is closed
  // (cpp-httplib's default, 5, made every fifth REST call pay a new TLS
  // handshake); an idle one is closed after keep_alive_timeout.
  server.set_keep_alive_max_count(options.keep_alive_requests);
  server.set_keep_alive_timeout(
      absl::ToInt64Seconds(options.keep_alive_timeout));
  const int threads = options.threads;
  server.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  auto serve = [handler = std::move(handler), tls](const httplib::Request& req,
                                                   httplib::Response& res) {
    Respond(handler(Convert(req, tls)), tls ? req.ssl : nullptr, &res);
  };
  server.Get(".*", serve);
  server.Post(".*", serve);
  server.Put(".*", serve);
  server.Patch(".*", serve);
  server.Delete(".*", serve);

  if (address->port == 0) {
    impl->port = server.bind_to_any_port(address->host);
  } else if (server.bind_to_port(address->host, address->port)) {
    impl->port = address->port;
  }
  if (impl->port <= 0) {
    return absl::UnavailableError(absl::StrCat(
        options.flag, ": cannot listen on ", options.listen));
  }
  impl->thread = std::thread([s = impl->server.get()] { s->listen_after_bind(); });
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

}  // namespace fabric::http
