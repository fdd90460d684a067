#!/usr/bin/env python3
"""Runs the commands of README.md's usage sections, in order, as pasted.

The commands are read from README.md when the test runs: the fenced ```sh
blocks of the sections "Usage", "Node agents" and "Lending SR-IOV virtual
functions". A README edit that breaks a command breaks this test; nothing
here is a copy of a command. RULES (below, also printed at the start of every
run) says how README lines become processes on this host.

Usage: readme_usage_test.py --readme README.md --bin-dir build/bin
           [--source-dir DIR] [--slowdown N] [--keep]
"""

import argparse
import ctypes
import itertools
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

SECTIONS = ["Usage", "Node agents", "Lending SR-IOV virtual functions"]

RULES = """\
How the test runs README lines (sections: {sections})
 1. Commands. Every ```sh block of those sections, in order. A command is the
    shortest run of lines that bash parses as complete (a trailing '\\' or an
    open 'for ... do' continues it). Comment lines are not run; a comment line
    '#   TEXT' (three spaces) right under a command is output the README shows
    for it: some line of the command's output must match TEXT, with the
    placeholder ids in it standing for any id (rule 4). fabricctl prints an
    object as it is when it reads it (with --request-id it reads it again),
    so with --wait a shown '(PENDING)' line may be printed '(READY)', and
    then the shown '... is READY' line is not printed.
 2. Where. Each command runs with 'bash -c' in a fresh temp directory (the
    working directory of a fresh checkout: build/bin links to the built
    binaries, deploy/ to the source tree's), with the binaries first on PATH
    and FABRIC_SERVER unset until the README exports it. 'export NAME=VALUE'
    lines set NAME for every later command.
 3. Notation. 'a|b|c' (a word with bars) is run once per alternative, in
    order. '[X]' is an optional part, '[A | B]' optional alternatives: a
    command that changes nothing (fabricctl get/describe, fabric-agent
    --discover) runs in every form (without X, then with each alternative);
    any other command runs once per alternative, with the part put in (so
    'delete fabric F [--force]' runs as 'delete fabric F --force'). A bar
    anywhere else is an error (the README has no shell pipes here).
 4. Placeholders. Ids the README shows in a command's output (alloc-<12 hex>,
    att-<12 hex>) are bound, by rule 1's match, to the ids that command really
    printed, and replaced by them in later commands (an id used before it is
    bound is an error). NAME is the first name 'fabricctl -o json get KINDS'
    lists for the kind named just before it (a form whose NAME has nothing to
    name yet is skipped, with the reason printed); ID is a fresh request id;
    FILE is agent/discovery/testdata/good.lspci (an lspci -xxxx dump); DIR is
    /sys. Any other upper-case word is an error.
 5. Addresses: loopback only. HOST:7070 is the manager: its own --listen gets
    port 0, and every other HOST:7070 (127.0.0.1 or 10.0.0.1) becomes
    127.0.0.1:<the port it printed>. Any other HOST:PORT (0.0.0.0:7071,
    10.0.0.2:7071) becomes 127.0.0.1:<a free port>, the same one for each
    README port. /var/lib/fabric-sim, the simulator directory the servers
    share, becomes the one the agents started before it share (else
    <tmp>/fabric-sim).
 6. Background. A command with a '&' is started in its own process group,
    output to a log, and the test waits (polling, with a deadline) for what
    it started (the programs in that group): a fabric-manager until it
    prints its port; a fabric-agent until 'describe node' shows its node
    READY, at its --advertise address when it has one (the README's agent
    for n1 under "Node agents" takes the node over from the one started
    under "Usage": the older one is fenced and exits 3).
 7. State. Before 'fabricctl verify', the test waits (polling, with a
    deadline) until the allocations it checks are READY (the one it names;
    for --all every live one), and before 'fabricctl vf setup|config|verify|
    interrupt ATT' until attachment ATT is READY: agents apply configurations
    asynchronously, and a person pasting the lines gives them the time. (An
    object READY a moment ago can also be PENDING again for up to a
    heartbeat: an agent's heartbeat, built before an apply, can reach the
    manager after the apply's report and set its applied generation back.
    That is a manager race, not a README error.)
 8. Skipped, reason printed: lines with '--backend linux' (need NTB hardware
    and ntb_tool's debugfs); discovery forms that read this host's PCI bus
    when it has none (/sys/bus/pci/devices missing or empty).
 9. Exit codes. Every command must exit 0, except those in EXPECTED_EXIT
    (none): the first that does not fails the test with the command, its exit
    code and its output, and the logs of what runs in the background.
10. Cleanup. Every program the test started is stopped (TERM to its process
    group, then KILL; the test is their subreaper) and the temp directory
    removed, on success, failure, SIGTERM, SIGINT or SIGHUP.
11. Transport. The test makes a CA with deploy/pki.sh in <tmp>/test-pki, as
    the Security section says, and fabricctl (the README's and the test's own
    calls) runs as user/admin through FABRIC_TLS_CERT/KEY/CA until the README
    exports its own. A fabric-manager or fabric-agent line with no transport
    flag (--tls-cert, --tls-key, --tls-ca or --insecure) gets the
    certificate of manager/m1, or of node/NODE for the agent's --node
    (--insecure instead once the README has started the manager with
    --insecure; then the test's FABRIC_TLS_* are dropped and its own calls
    add --insecure). A line with its own transport flags runs as written.
"""

# README command text (as written, comments stripped) -> the exit code the
# README says it has. None of the usage commands is expected to fail.
EXPECTED_EXIT = {}

SAMPLE_ID = re.compile(r"\b(alloc|att)-[0-9a-f]{12}\b")
ADDRESS = re.compile(r"\b(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})\b")
PLACEHOLDER = re.compile(r"(?<![\w$/.:-])[A-Z][A-Z_]*(?![\w/.:=-])")
KNOWN_PLACEHOLDERS = {"NAME", "ID", "FILE", "DIR"}
BRACKET = re.compile(r"\[([^\[\]]*)\]")
WORD_ALTERNATIVES = re.compile(r"(?<![\w/.-])[\w.-]+(?:\|[\w.-]+)+(?![\w/.-])")
# The whole run (scaled by --slowdown) must end before this; ctest's TIMEOUT
# (tests/readme/CMakeLists.txt) is longer, so the test always cleans up.
TOTAL_SECONDS = 240
MANAGER_PORT = "7070"
TRANSPORT_FLAGS = ("--tls-cert", "--tls-key", "--tls-ca", "--insecure")
TLS_ENV = ("FABRIC_TLS_CERT", "FABRIC_TLS_KEY", "FABRIC_TLS_CA")
SIM_SHARE = "/var/lib/fabric-sim"
KIND_PLURAL = {"fabric": "fabrics", "node": "nodes", "bridge": "bridges",
               "link": "links", "map": "maps", "allocation": "allocations",
               "profile": "profiles", "vf": "vfs", "attachment": "attachments"}


class Failure(Exception):
  pass


class Skip(Exception):
  pass


def log(msg=""):
  print(msg, flush=True)


# --------------------------------------------------------------- README --

class Command:
  def __init__(self, section, line, text):
    self.section = section
    self.line = line          # README line number of its first line
    self.text = text          # as written, possibly several lines
    self.outputs = []         # '#   TEXT' lines shown under it

  def code(self):
    """The text without comments."""
    return "\n".join(strip_comment(l) for l in self.text.split("\n")).strip()


def strip_comment(line):
  """The line without a trailing '# ...' comment (outside quotes)."""
  quote = None
  for i, c in enumerate(line):
    if quote:
      if c == quote:
        quote = None
    elif c in "'\"":
      quote = c
    elif c == "#" and (i == 0 or line[i - 1].isspace()):
      return line[:i].rstrip()
  return line.rstrip()


def bash_complete(text):
  if text.rstrip().endswith("\\"):
    return False
  r = subprocess.run(["bash", "-n", "-c", text], stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL)
  return r.returncode == 0


def read_commands(readme):
  lines = open(readme, encoding="utf-8").read().split("\n")
  commands = []
  for section in SECTIONS:
    start = next((i for i, l in enumerate(lines)
                  if re.fullmatch(r"#{2,3} " + re.escape(section), l)), None)
    if start is None:
      raise Failure(f"README.md has no section '{section}'")
    end, fenced = len(lines), False
    for i in range(start + 1, len(lines)):
      if lines[i].startswith("```"):
        fenced = not fenced
      elif not fenced and re.match(r"#{1,6} ", lines[i]):
        end = i
        break
    blocks = 0
    i = start + 1
    while i < end:
      if lines[i].strip() != "```sh":
        i += 1
        continue
      blocks += 1
      i += 1
      pending = None   # lines of a command not yet complete
      last = None      # the command sample-output lines attach to
      while i < end and lines[i].strip() != "```":
        raw = lines[i]
        if pending is not None:
          pending[1].append(raw)
          text = "\n".join(pending[1])
          if bash_complete(text):
            last = Command(section, pending[0], text)
            commands.append(last)
            pending = None
        elif not raw.strip():
          last = None
        elif raw.lstrip().startswith("#"):
          m = re.match(r"#   (\S.*)$", raw.strip())
          if m and last is not None:
            last.outputs.append(m.group(1))
          else:
            last = None
        elif bash_complete(raw):
          last = Command(section, i + 1, raw)
          commands.append(last)
        else:
          pending = (i + 1, [raw])
        i += 1
      if pending is not None:
        raise Failure(f"README.md:{pending[0]}: a command bash cannot parse "
                      f"(never complete): {pending[1][0]}")
      i += 1
    if blocks == 0:
      raise Failure(f"README.md section '{section}' has no ```sh block")
  return commands


def first_words(code):
  """The words of the first simple command (continuation lines joined)."""
  line = code.replace("\\\n", " ").split("\n")[0]
  try:
    return shlex.split(line, comments=True)
  except ValueError:
    return line.split()


def is_read_only(code):
  words = first_words(code)
  if not words:
    return False
  prog = os.path.basename(words[0])
  if prog == "fabric-agent":
    return "--discover" in words
  if prog != "fabricctl":
    return False
  i = 1
  while i < len(words) and words[i].startswith("-"):
    i += 2 if words[i] in ("-o", "--output", "--server", "--timeout") else 1
  return i < len(words) and words[i] in ("get", "describe")


def forms(code):
  """The commands the README notation in code stands for (rule 3)."""
  groups = []

  def bracket(m):
    alts = [a.strip() for a in re.split(r"\s+\|\s+", m.group(1))]
    groups.append(([""] + alts) if read_only else alts)
    return f"\x00{len(groups) - 1}\x00"

  def words(m):
    groups.append(m.group(0).split("|"))
    return f"\x00{len(groups) - 1}\x00"

  read_only = is_read_only(code)
  if "|" not in code and "[" not in code:
    return [code]
  marked = BRACKET.sub(bracket, code)
  marked = WORD_ALTERNATIVES.sub(words, marked)
  if "|" in marked or "[" in marked or "]" in marked:
    raise Failure("notation the test does not know (a bar or bracket outside "
                  f"rule 3): {code}")
  # Alternatives vary fastest at the right, as they are read.
  order = [int(i) for i in re.findall(r"\x00(\d+)\x00", marked)]
  out = []
  for values in itertools.product(*(groups[i] for i in order)):
    choice = dict(zip(order, values))
    text = re.sub(r"\x00(\d+)\x00", lambda m: choice[int(m.group(1))], marked)
    out.append(re.sub(r"[ \t]+", " ", text).strip())
  return out


# ---------------------------------------------------------- processes --

def free_port():
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def group_members(pgid):
  """(pid, argv) of the processes in process group pgid."""
  members = []
  for entry in os.listdir("/proc"):
    if not entry.isdigit():
      continue
    try:
      with open(f"/proc/{entry}/stat") as f:
        stat = f.read()
      fields = stat[stat.rindex(")") + 2:].split()
      if int(fields[2]) != pgid or fields[0] == "Z":
        continue
      with open(f"/proc/{entry}/cmdline", "rb") as f:
        argv = [a.decode() for a in f.read().split(b"\0") if a]
    except (OSError, ValueError, IndexError):
      continue
    members.append((int(entry), argv))
  return members


DEAD = set()  # pids of programs seen to have exited (and reaped)


def alive(pid):
  """Whether a program the test started still runs (reaping it if not)."""
  if pid in DEAD:
    return False
  try:
    # The test is the subreaper of what it starts: reap a dead one.
    done, _ = os.waitpid(pid, os.WNOHANG)
    if done == pid:
      DEAD.add(pid)
      return False
    return True
  except ChildProcessError:
    pass  # not a child (no subreaper): ask /proc
  try:
    with open(f"/proc/{pid}/stat") as f:
      stat = f.read()
    if stat[stat.rindex(")") + 2] != "Z":
      return True
  except OSError:
    pass
  DEAD.add(pid)
  return False


def flag(argv, name):
  for i, a in enumerate(argv):
    if a == name and i + 1 < len(argv):
      return argv[i + 1]
    if a.startswith(name + "="):
      return a[len(name) + 1:]
  return None


class Runner:
  def __init__(self, args):
    self.args = args
    self.bin_dir = os.path.abspath(args.bin_dir)
    self.source_dir = os.path.abspath(args.source_dir)
    self.slowdown = args.slowdown
    self.end = time.monotonic() + TOTAL_SECONDS * self.slowdown
    self.tmp = tempfile.mkdtemp(prefix="fabric-readme-test-")
    self.groups = {}          # pgid -> pids of the programs started in it
    self.foreground = None    # the command running in the foreground
    self.logs = []            # (description, path) of background output
    self.bound = {}           # README sample id -> real id
    self.ports = {}           # README port -> loopback port
    self.manager_port = None
    self.sim_dirs = []        # --sim-dir of the agents started, absolute
    self.request_ids = 0
    self.env = dict(os.environ)
    self.env.pop("FABRIC_SERVER", None)
    self.env["PATH"] = self.bin_dir + os.pathsep + self.env.get("PATH", "")
    os.makedirs(os.path.join(self.tmp, "build"))
    os.symlink(self.bin_dir, os.path.join(self.tmp, "build", "bin"))
    os.symlink(os.path.join(self.source_dir, "deploy"),
               os.path.join(self.tmp, "deploy"))
    os.makedirs(os.path.join(self.tmp, "logs"))
    # Rule 11.
    self.pki = os.path.join(self.tmp, "test-pki")
    self.issued = set()       # "KIND-NAME" of the certificates issued
    self.manager_insecure = False
    self.pki_script("init", self.pki)
    admin = self.certificate("user", "admin", "--role", "admin")
    self.test_tls_env = dict(zip(TLS_ENV, admin))
    self.env.update(self.test_tls_env)

  # ------------------------------------------------------- transport --
  def pki_script(self, *args):
    r = subprocess.run([os.path.join(self.source_dir, "deploy", "pki.sh"),
                        *args], capture_output=True, text=True)
    if r.returncode != 0:
      raise Failure(f"deploy/pki.sh {' '.join(args)}: exit code "
                    f"{r.returncode}\n{r.stdout}{r.stderr}")

  def certificate(self, kind, name, *extra):
    """(cert, key, ca) of KIND/NAME, issued on first use (rule 11)."""
    base = os.path.join(self.pki, f"{kind}-{name}")
    if f"{kind}-{name}" not in self.issued:
      self.pki_script("issue", self.pki, kind, name, *extra)
      self.issued.add(f"{kind}-{name}")
    return base + ".crt", base + ".key", os.path.join(self.pki, "ca.crt")

  def transport(self, text):
    """Rule 11: the transport flags of a manager or agent line."""
    words = first_words(text)
    if not words:
      return text
    prog = os.path.basename(words[0])
    if (prog not in ("fabric-manager", "fabric-agent") or "--help" in words
        or "--discover" in words):
      return text
    own = any(w.split("=")[0] in TRANSPORT_FLAGS for w in words)
    if prog == "fabric-manager":
      self.manager_insecure = own and "--insecure" in words
      for name, value in self.test_tls_env.items():
        if self.manager_insecure and self.env.get(name) == value:
          del self.env[name]
    if own:
      return text
    if self.manager_insecure:
      flags = ["--insecure"]
    else:
      cert, key, ca = (self.certificate("manager", "m1")
                       if prog == "fabric-manager" else
                       self.certificate("node", flag(words, "--node")))
      flags = ["--tls-cert", cert, "--tls-key", key, "--tls-ca", ca]
    at = text.index(words[0]) + len(words[0])
    return text[:at] + " " + " ".join(flags) + text[at:]

  def deadline(self, seconds):
    """Now + seconds (scaled), never past the test's own deadline."""
    return min(time.monotonic() + seconds * self.slowdown, self.end)

  def remaining(self):
    left = self.end - time.monotonic()
    if left <= 0:
      raise Failure(f"the test's own deadline ({TOTAL_SECONDS * self.slowdown:g}"
                    "s, below ctest's TIMEOUT so that it cleans up) passed")
    return left

  # -------------------------------------------------------- cleanup --
  def cleanup(self):
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
      signal.signal(s, signal.SIG_IGN)  # a second signal must not stop this
    # A group is signalled only while one of its programs is unreaped (the
    # test is their subreaper), so that its id cannot have been reused.
    if self.foreground is not None and self.foreground.poll() is None:
      os.killpg(self.foreground.pid, signal.SIGKILL)
      self.foreground.wait()
    for sig, grace in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
      for pgid, pids in self.groups.items():
        if any(alive(p) for p in pids):
          try:
            os.killpg(pgid, sig)
          except ProcessLookupError:
            pass
      end = time.monotonic() + grace
      while (any(alive(p) for pids in self.groups.values() for p in pids)
             and time.monotonic() < end):
        time.sleep(0.05)
    if self.args.keep:
      log(f"kept {self.tmp}")
    else:
      shutil.rmtree(self.tmp, ignore_errors=True)

  def dump_logs(self):
    for what, path in self.logs:
      try:
        text = open(path, errors="replace").read()
      except OSError:
        continue
      tail = "\n".join(text.splitlines()[-40:])
      log(f"--- log of {what} (last 40 lines) ---\n{tail}")

  # ------------------------------------------------------- fabricctl --
  def ctl_json(self, *args):
    try:
      r = subprocess.run(
          [os.path.join(self.bin_dir, "fabricctl"), "--server",
           f"127.0.0.1:{self.manager_port}", "-o", "json",
           *(["--insecure"] if self.manager_insecure else []), *args],
          capture_output=True, text=True, env=self.env, cwd=self.tmp,
          timeout=min(30 * self.slowdown, self.remaining()))
    except subprocess.TimeoutExpired:
      return None
    if r.returncode != 0:
      return None
    try:
      return json.loads(r.stdout)
    except ValueError:
      return None

  def wait_for(self, what, check, seconds=30, pids=()):
    end = self.deadline(seconds)
    while True:
      if check():
        return
      for pid in pids:
        if not alive(pid):
          raise Failure(f"{what}: process {pid} exited")
      if time.monotonic() > end:
        self.remaining()
        raise Failure(f"timed out ({seconds * self.slowdown:g}s) waiting "
                      f"for {what}")
      time.sleep(0.05)

  # ------------------------------------------------------- rewriting --
  def fill(self, text):
    """Rule 4's placeholders, in one form."""
    for m in PLACEHOLDER.finditer(text):
      if m.group(0) not in KNOWN_PLACEHOLDERS:
        raise Failure(f"unknown placeholder {m.group(0)} in: {text}")

    def name(m):
      before = text[:m.start()].split()
      kind = KIND_PLURAL.get(before[-1], before[-1]) if before else ""
      items = self.ctl_json("get", kind)
      if not isinstance(items, list):
        raise Failure(f"NAME after '{kind}': 'fabricctl -o json get {kind}' "
                      "did not list")
      if not items:
        raise Skip(f"NAME: there are no {kind} yet")
      return items[0]["name"]

    text = re.sub(r"(?<![\w$/.:-])NAME(?![\w/.:-])", name, text)

    def request_id(m):
      self.request_ids += 1
      return f"readme-test-{self.request_ids}"

    text = re.sub(r"(?<![\w$/.:-])ID(?![\w/.:-])", request_id, text)
    text = re.sub(r"(?<![\w$/.:-])FILE(?![\w/.:-])", os.path.join(
        self.source_dir, "agent/discovery/testdata/good.lspci"), text)
    text = re.sub(r"(?<![\w$/.:-])DIR(?![\w/.:-])", "/sys", text)
    return text

  def rewrite(self, text):
    """Rules 4 (ids) and 5 (addresses, the shared simulator directory)."""
    def sample_id(m):
      if m.group(0) not in self.bound:
        raise Failure(f"{m.group(0)} is used before any command's output in "
                      "the README shows where it comes from")
      return self.bound[m.group(0)]

    text = SAMPLE_ID.sub(sample_id, text)
    starts_manager = (os.path.basename(first_words(text)[0])
                      == "fabric-manager") if first_words(text) else False

    def address(m):
      port = m.group(2)
      if port == MANAGER_PORT:
        if starts_manager:
          return "127.0.0.1:0"
        if self.manager_port is None:
          raise Failure(f"{m.group(0)}: the manager is not started yet")
        return f"127.0.0.1:{self.manager_port}"
      if port not in self.ports:
        self.ports[port] = free_port()
      return f"127.0.0.1:{self.ports[port]}"

    text = ADDRESS.sub(address, text)
    if SIM_SHARE in text:
      shared = sorted(set(self.sim_dirs))
      if len(shared) > 1:
        raise Failure(f"{SIM_SHARE}: the agents so far use several simulator "
                      f"directories ({', '.join(shared)}), not one shared one")
      target = shared[0] if shared else os.path.join(self.tmp, "fabric-sim")
      text = text.replace(SIM_SHARE, target)
    return text

  # --------------------------------------------------------- running --
  @staticmethod
  def skip_discovery(text):
    """Rule 8: discovery on this host's bus needs one."""
    words = first_words(text)
    if (words and os.path.basename(words[0]) == "fabric-agent"
        and "--discover" in words and "--pci-dump" not in words):
      root = flag(words, "--sysfs-root") or "/sys"
      devices = os.path.join(root, "bus/pci/devices")
      if not os.path.isdir(devices) or not os.listdir(devices):
        raise Skip(f"reads this host's PCI bus, and {devices} is missing or "
                   "empty")

  def run(self, commands):
    used = set()
    for cmd in commands:
      code = cmd.code()
      used.add(code)
      if not code:
        continue
      all_forms = forms(code)
      if cmd.outputs and len(all_forms) > 1:
        raise Failure(f"README.md:{cmd.line}: output shown under a command "
                      "with several forms")
      for form in all_forms:
        self.run_form(cmd, code, form)
    stale = set(EXPECTED_EXIT) - used
    if stale:
      raise Failure(f"EXPECTED_EXIT names commands not in the README: {stale}")

  def run_form(self, cmd, code, form):
    where = f"README.md:{cmd.line} ({cmd.section})"
    shown = form if form == code else f"{form}    [form of: {code}]"
    log(f"\n{where}\n$ {shown}")
    try:
      if "--backend linux" in form:
        raise Skip("needs NTB hardware (the linux backend drives ntb_tool's "
                   "debugfs)")
      text = self.transport(self.fill(self.rewrite(form)))
      if text != form:
        log(f"  as: {text}")
      self.skip_discovery(text)
    except Skip as s:
      log(f"  SKIPPED: {s}")
      return

    words = first_words(text)
    if words and words[0] == "export":
      for assignment in words[1:]:
        name, _, value = assignment.partition("=")
        self.env[name] = value
      return
    self.wait_before(words)
    if self.is_background(text):
      self.start_background(cmd, text)
      return

    r = subprocess.Popen(["bash", "-c", text], cwd=self.tmp, env=self.env,
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True,
                         start_new_session=True)
    self.foreground = r
    timeout = min(120 * self.slowdown, self.remaining())
    try:
      out, _ = r.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
      os.killpg(r.pid, signal.SIGKILL)
      out, _ = r.communicate()
      raise Failure(f"{where}: timed out after {timeout:g}s:\n$ {text}\n{out}")
    printed = out.rstrip("\n").split("\n") if out else []
    for line in printed[:20]:
      log(f"  | {line}")
    if len(printed) > 20:
      log(f"  | ... ({len(printed) - 20} more lines)")
    want = EXPECTED_EXIT.get(code, 0)
    if r.returncode != want:
      raise Failure(f"{where}: exit code {r.returncode} (want {want})\n"
                    f"$ {text}\noutput:\n{out}")
    self.check_outputs(where, cmd, text, out)

  def check_outputs(self, where, cmd, text, out):
    """Rule 1: each output line the README shows is printed (ids bound)."""
    lines = [l.strip() for l in out.split("\n")]
    ready_at_once = False
    for shown in cmd.outputs:
      if ready_at_once and shown.endswith(" is READY"):
        log(f"  (not printed, READY at once: {shown})")
        continue
      match = self.match_output(shown, lines)
      if (match is None and "(PENDING)" in shown and
          re.search(r"(^|\s)--wait(\s|$)", text)):
        match = self.match_output(shown.replace("(PENDING)", "(READY)"), lines)
        ready_at_once = match is not None
      if match is None:
        raise Failure(f"{where}: the README shows the output line\n  {shown}\n"
                      f"but the command printed:\n{out}")
      for sample, real in match.items():
        if sample not in self.bound:
          self.bound[sample] = real
          log(f"  bound {sample} = {real}")

  def match_output(self, shown, lines):
    """{README id: printed id} when some line matches shown, else None."""
    pattern, names = "", []
    pos = 0
    for m in SAMPLE_ID.finditer(shown):
      pattern += re.escape(shown[pos:m.start()])
      if m.group(0) in self.bound:
        pattern += re.escape(self.bound[m.group(0)])
      elif m.group(0) in names:
        pattern += f"(?P=id{names.index(m.group(0))})"
      else:
        pattern += f"(?P<id{len(names)}>{m.group(1)}-[0-9a-f]{{12}})"
        names.append(m.group(0))
      pos = m.end()
    pattern += re.escape(shown[pos:])
    for line in lines:
      m = re.fullmatch(pattern, line)
      if m:
        return {s: m.group(f"id{i}") for i, s in enumerate(names)}
    return None

  @staticmethod
  def is_background(text):
    # A '&' that is not part of '&&', '>&' or '&>'.
    return re.search(r"(?<![&>])&(?![&>])", text) is not None

  def start_background(self, cmd, text):
    path = os.path.join(self.tmp, "logs", f"line-{cmd.line}.log")
    with open(path, "ab") as out:
      shell = subprocess.Popen(["bash", "-c", text], cwd=self.tmp,
                               env=self.env, stdin=subprocess.DEVNULL,
                               stdout=out, stderr=subprocess.STDOUT,
                               start_new_session=True)
    pgid = shell.pid
    self.groups[pgid] = [pgid]   # the shell, until it has returned
    self.logs.append((f"README.md:{cmd.line}", path))
    try:
      rc = shell.wait(timeout=min(30 * self.slowdown, self.remaining()))
    except subprocess.TimeoutExpired:
      raise Failure(f"README.md:{cmd.line}: the shell did not return\n$ {text}")
    DEAD.add(pgid)  # reaped by wait()
    if rc != 0:
      raise Failure(f"README.md:{cmd.line}: exit code {rc}\n$ {text}\n"
                    f"output:\n{open(path, errors='replace').read()}")
    # What the shell started, once each has become its program.
    members = []

    def exec_done():
      nonlocal members
      members = group_members(pgid)
      self.groups[pgid] = sorted(set(self.groups[pgid]) |
                                 {pid for pid, _ in members})
      return members and all(
          argv and os.path.basename(argv[0]) not in ("bash", "sh")
          for _, argv in members)

    self.wait_for(f"README.md:{cmd.line} to start its programs", exec_done, 10)
    for pid, argv in members:
      prog = os.path.basename(argv[0])
      if prog == "fabric-manager":
        self.wait_manager(cmd, pid, path)
      elif prog == "fabric-agent" and "--discover" not in argv:
        self.wait_agent(cmd, pid, argv)
      log(f"  started pid {pid}: {' '.join(argv)}")

  def wait_manager(self, cmd, pid, path):
    def port():
      try:
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", open(path).read())
      except OSError:
        return False
      if m:
        self.manager_port = m.group(1)
      return m is not None

    self.wait_for(f"README.md:{cmd.line}: fabric-manager to print its port",
                  port, 30, [pid])
    log(f"  fabric-manager listens on 127.0.0.1:{self.manager_port}")

  def wait_agent(self, cmd, pid, argv):
    node = flag(argv, "--node")
    advertise = flag(argv, "--advertise")
    sim_dir = flag(argv, "--sim-dir")
    if sim_dir:
      self.sim_dirs.append(os.path.normpath(os.path.join(self.tmp, sim_dir)))

    def ready():
      n = self.ctl_json("describe", "node", node)
      return (isinstance(n, dict) and n.get("agentState") == "READY" and
              (advertise is None or n.get("agentAddress") == advertise))

    self.wait_for(f"README.md:{cmd.line}: the agent of {node} to be READY"
                  + (f" at {advertise}" if advertise else ""), ready, 30, [pid])

  def wait_before(self, words):
    """Rule 7."""
    if not words or os.path.basename(words[0]) != "fabricctl":
      return
    if "vf" in words:
      i = words.index("vf")
      if (i + 2 < len(words) and
          words[i + 1] in ("setup", "config", "verify", "interrupt")):
        att = words[i + 2]
        self.wait_for(f"attachment {att} READY before vf {words[i + 1]}",
                      lambda: (self.ctl_json("describe", "attachment", att)
                               or {}).get("state") == "READY", 30)
      return
    if "verify" not in words:
      return
    targets = [w for w in words[words.index("verify") + 1:]
               if not w.startswith("-")]

    def ready():
      if targets:
        allocs = [self.ctl_json("describe", "allocation", t) for t in targets]
      else:
        listed = self.ctl_json("get", "allocations")
        if not isinstance(listed, list):
          return False
        allocs = [a for a in listed if a.get("state") != "RELEASED"]
      return all(isinstance(a, dict) and a.get("state") == "READY"
                 for a in allocs)

    self.wait_for("allocations READY before verify "
                  f"({' '.join(targets) or '--all'})", ready, 30)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  here = os.path.dirname(os.path.abspath(__file__))
  parser.add_argument("--readme", required=True)
  parser.add_argument("--bin-dir", required=True)
  parser.add_argument("--source-dir",
                      default=os.path.normpath(os.path.join(here, "..", "..")))
  parser.add_argument("--slowdown", type=float, default=1.0,
                      help="multiplies every deadline (sanitizer builds)")
  parser.add_argument("--keep", action="store_true",
                      help="keep the temp directory")
  args = parser.parse_args()
  for prog in ("fabric-manager", "fabric-agent", "fabricctl"):
    if not os.access(os.path.join(args.bin_dir, prog), os.X_OK):
      log(f"FAIL: {prog} is not built in {args.bin_dir}")
      return 1

  log(RULES.format(sections=", ".join(f'"{s}"' for s in SECTIONS)))
  # Orphans of the shells (the background programs) become children of the
  # test, not of init, so that they can be reaped and never outlive it
  # unseen (PR_SET_CHILD_SUBREAPER).
  try:
    ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)
  except (OSError, AttributeError):
    pass

  def on_signal(signum, frame):
    raise SystemExit(f"interrupted by signal {signum}")

  for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(s, on_signal)

  runner = None
  try:
    commands = read_commands(args.readme)
    runner = Runner(args)
    log(f"temp directory {runner.tmp}; {len(commands)} README commands")
    runner.run(commands)
    log("\nPASS: every command of the README's usage sections worked")
    return 0
  except Failure as f:
    log(f"\nFAIL: {f}")
    if runner:
      runner.dump_logs()
    return 1
  except Exception:
    log("\nFAIL: the test itself failed:")
    traceback.print_exc(file=sys.stdout)
    if runner:
      runner.dump_logs()
    return 1
  finally:
    if runner:
      runner.cleanup()


if __name__ == "__main__":
  sys.exit(main())
