#include "common/security/testing/test_pki.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

#ifndef FABRIC_SOURCE_DIR
#error "FABRIC_SOURCE_DIR must be defined by the build"
#endif

namespace fabric::security {
namespace {

std::string ScriptPath() {
  const char* env = std::getenv("FABRIC_SOURCE_DIR");
  std::string root = (env != nullptr && *env != '\0') ? env : FABRIC_SOURCE_DIR;
  return root + "/deploy/pki.sh";
}

// Runs pki.sh with `args`; its output goes to this process's stdout/stderr.
absl::Status RunPki(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"/bin/bash", ScriptPath()};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> cargv;
  for (std::string& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  pid_t pid = fork();
  if (pid < 0) return absl::InternalError("fork failed");
  if (pid == 0) {
    // The script's own chatter is not interesting to tests.
    int null = open("/dev/null", O_WRONLY);
    if (null >= 0) dup2(null, STDOUT_FILENO);
    execv(cargv[0], cargv.data());
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return absl::InternalError("waitpid failed");
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::InternalError(absl::StrCat("pki.sh ", absl::StrJoin(args, " "),
                                            " failed (status ", status, ")"));
  }
  return absl::OkStatus();
}

// A broken PKI is a broken test: stop here, saying why.
void CheckOk(const absl::Status& s) {
  if (s.ok()) return;
  std::fprintf(stderr, "TestPki: %s\n", s.ToString().c_str());
  std::abort();
}

}  // namespace

absl::StatusOr<std::unique_ptr<TestPki>> TestPki::Create() {
  std::string tmpl =
      (std::filesystem::temp_directory_path() / "fabric-pki-XXXXXX").string();
  if (mkdtemp(tmpl.data()) == nullptr) {
    return absl::InternalError(absl::StrCat("mkdtemp ", tmpl, " failed"));
  }
  std::unique_ptr<TestPki> pki(new TestPki(tmpl));
  if (absl::Status s = RunPki({"init", pki->dir_}); !s.ok()) return s;
  return pki;
}

TestPki::~TestPki() {
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

std::string TestPki::ca_file() const { return dir_ + "/ca.crt"; }

namespace {

// Runs `pki.sh issue DIR KIND NAME [--role ROLE] VALIDITY...` (aborting
// when it fails) and names the files it wrote.
TlsConfig IssueOrDie(const std::string& dir, const std::string& ca,
                     const std::string& kind, const std::string& name,
                     const std::string& role,
                     const std::vector<std::string>& validity) {
  std::vector<std::string> args = {"issue", dir, kind, name};
  if (!role.empty()) {
    args.push_back("--role");
    args.push_back(role);
  }
  args.insert(args.end(), validity.begin(), validity.end());
  CheckOk(RunPki(args));
  TlsConfig tls;
  tls.cert_file = absl::StrCat(dir, "/", kind, "-", name, ".crt");
  tls.key_file = absl::StrCat(dir, "/", kind, "-", name, ".key");
  tls.ca_file = ca;
  return tls;
}

}  // namespace

TlsConfig TestPki::Issue(const std::string& kind, const std::string& name,
                         const std::string& role, int days) {
  return IssueOrDie(dir_, ca_file(), kind, name, role,
                    {"--days", std::to_string(days)});
}

TlsConfig TestPki::IssueExpired(const std::string& kind,
                                const std::string& name,
                                const std::string& role) {
  return IssueOrDie(dir_, ca_file(), kind, name, role, {"--expired"});
}

}  // namespace fabric::security
