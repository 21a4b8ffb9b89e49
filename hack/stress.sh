#!/usr/bin/env bash
# Stress and crash-safety runs for skiff. Needs root.
#
#   hack/stress.sh [PHASE...]      phases: seq conc mixed crash caller (default: all of them)
#
# Knobs (environment):
#   SKIFF=path          runtime binary (default: the newer of target/{release,debug}/skiff)
#   CYCLES=1000         sequential create/start/kill/delete cycles            (seq)
#   CONCURRENT=100      concurrent lifecycles on distinct ids                  (conc)
#   MIXED=20            concurrent mixed commands on one id, per round         (mixed)
#   MIXED_ROUNDS=10     rounds of the mixed phase                              (mixed)
#   CRASH=200           SIGKILLs of create/start/exec/delete at random delays  (crash)
#   CALLER=20           callers of create/run killed while they wait           (caller)
#   SEED=n              random seed (default: time-based, printed)
#   GLOBAL_CHECKS=1     also require no stray skiff processes on the whole host (off when other
#                       tests run in parallel, e.g. from `cargo test`)
#
# One long-lived python3 process drives every command with subprocess and checks after each
# phase: no mounts, cgroups, processes, zombies or state directories left, and its own fd count
# unchanged. It prints the figures and exits non-zero on any leak or failure.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
# shellcheck source=hack/lib.sh
source hack/lib.sh
need_root

if [[ -z ${SKIFF:-} ]]; then
	# The newer of the release and debug builds.
	SKIFF=$repo/target/debug/skiff
	if [[ -x target/release/skiff && target/release/skiff -nt $SKIFF ]]; then
		SKIFF=$repo/target/release/skiff
	fi
fi
if [[ ! -x $SKIFF ]]; then
	need_cargo
	cargo build --bin skiff
	SKIFF=$repo/target/debug/skiff
fi
rootfs="${SKIFF_TEST_ROOTFS:-$repo/fixtures/busybox-rootfs}"
[[ -x $rootfs/bin/busybox ]] || ./hack/mkrootfs.sh "$rootfs" >&2
command -v python3 >/dev/null || apt_install python3

export SKIFF ROOTFS="$rootfs"
exec python3 -c '
import concurrent.futures as cf
import json, os, random, shutil, signal, subprocess, sys, tempfile, threading, time

SKIFF = os.environ["SKIFF"]
ROOTFS = os.environ["ROOTFS"]
ENV = lambda k, d: int(os.environ.get(k, d))
CYCLES, CONCURRENT, MIXED = ENV("CYCLES", 1000), ENV("CONCURRENT", 100), ENV("MIXED", 20)
MIXED_ROUNDS, CRASH, CALLER = ENV("MIXED_ROUNDS", 10), ENV("CRASH", 200), ENV("CALLER", 20)
GLOBAL = ENV("GLOBAL_CHECKS", 1)
SEED = ENV("SEED", int(time.time() * 1000) % 1000000)
TIMEOUT = 30
rng = random.Random(SEED)
MYPID = os.getpid()
PREFIX = "st%d-" % MYPID

tmp = tempfile.mkdtemp(prefix="skiff-stress-")
os.chmod(tmp, 0o755)
root = os.path.join(tmp, "state")
bundle = os.path.join(tmp, "bundle")
os.mkdir(bundle)
subprocess.run(["cp", "-a", ROOTFS, os.path.join(bundle, "rootfs")], check=True)
subprocess.run([SKIFF, "spec", "--bundle", bundle], check=True)
with open(os.path.join(bundle, "config.json")) as f:
    SPEC = json.load(f)
SPEC["process"]["terminal"] = False
SPEC["root"] = {"path": "rootfs", "readonly": True}

def write_spec(args, extra=None):
    s = json.loads(json.dumps(SPEC))
    s["process"]["args"] = args
    if extra:
        extra(s)
    with open(os.path.join(bundle, "config.json.tmp"), "w") as f:
        json.dump(s, f)
    os.rename(os.path.join(bundle, "config.json.tmp"), os.path.join(bundle, "config.json"))

failures = []
def fail(msg):
    failures.append(msg)
    print("FAIL: " + msg, file=sys.stderr, flush=True)

counter = [0]
lock = threading.Lock()
def new_id(tag):
    with lock:
        counter[0] += 1
        return "%s%s-%d" % (PREFIX, tag, counter[0])

def sk(*args, timeout=TIMEOUT, out=subprocess.DEVNULL, check=False):
    """One runtime command; never a pipe for commands that may leave a container holding it."""
    # stderr goes to a file: a container made by create/run inherits it and would hold a pipe.
    with tempfile.TemporaryFile() as err:
        try:
            p = subprocess.run([SKIFF, "--root", root] + list(args), stdin=subprocess.DEVNULL,
                               stdout=out, stderr=err, timeout=timeout)
        except subprocess.TimeoutExpired:
            fail("`skiff %s` hung for more than %ds" % (" ".join(args), timeout))
            return None
        err.seek(0)
        p.stderr = err.read()
    if p.returncode < 0:
        fail("`skiff %s` died of signal %d: %s" % (" ".join(args), -p.returncode, p.stderr.decode(errors="replace")))
    elif check and p.returncode != 0:
        fail("`skiff %s` failed (%d): %s" % (" ".join(args), p.returncode, p.stderr.decode(errors="replace").strip()))
    return p

def state(cid):
    p = sk("state", cid, out=subprocess.PIPE)
    if p is None or p.returncode != 0:
        return None
    try:
        return json.loads(p.stdout)
    except ValueError:
        fail("state %s printed no JSON: %r" % (cid, p.stdout[:200]))
        return None

def wait_stopped(cid, secs=10):
    deadline = time.time() + secs
    while time.time() < deadline:
        st = state(cid)
        if st is None or st["status"] == "stopped":
            return True
        time.sleep(0.002)
    fail("%s not stopped %ds after SIGKILL" % (cid, secs))
    return False

def lifecycle(cid):
    ok = True
    for args in (["create", "--bundle", bundle, cid], ["start", cid], ["kill", cid, "KILL"]):
        p = sk(*args, check=True)
        ok = ok and p is not None and p.returncode == 0
        if not ok:
            break
    if ok:
        wait_stopped(cid)
        p = sk("delete", cid, check=True)
    else:
        sk("delete", "--force", cid)

# ---- what is left on the host ----
def fd_count():
    return len(os.listdir("/proc/self/fd"))

def pid_stat(pid):
    try:
        with open("/proc/%s/stat" % pid) as f:
            s = f.read()
    except OSError:
        return None
    rest = s[s.rfind(")") + 2:].split()
    return rest  # rest[0] = state, rest[1] = ppid

def all_pids():
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]

def my_zombies():
    z = []
    for pid in all_pids():
        st = pid_stat(pid)
        if st and st[0] in "ZX" and int(st[1]) == MYPID:
            z.append(pid)
    return z

def host_zombies():
    return sum(1 for pid in all_pids() if (pid_stat(pid) or ["?"])[0] == "Z")

def inside(p, d):
    return p == d or p.startswith(d + "/")

def rooted_in_tmp():
    found = []
    for pid in all_pids():
        for link in ("root", "cwd"):
            try:
                t = os.readlink("/proc/%d/%s" % (pid, link))
            except OSError:
                continue
            if inside(t, tmp):
                st = pid_stat(pid)
                if st and st[0] not in "ZX":
                    found.append(pid)
                break
    return found

def skiff_procs():
    """skiff processes on the host other than ours in flight (GLOBAL_CHECKS only)."""
    found = []
    for pid in all_pids():
        try:
            if os.readlink("/proc/%d/exe" % pid) == os.path.realpath(SKIFF):
                found.append(pid)
        except OSError:
            pass
    return found

def our_cgroups():
    found = []
    for h in os.listdir("/sys/fs/cgroup"):
        d = os.path.join("/sys/fs/cgroup", h, "skiff")
        if os.path.isdir(d):
            found += [os.path.join(d, c) for c in os.listdir(d) if c.startswith(PREFIX)]
    return found

def our_mounts():
    with open("/proc/self/mountinfo") as f:
        return [l.split()[4] for l in f if inside(l.split()[4], tmp)]

def state_dirs():
    return os.listdir(root) if os.path.isdir(root) else []

def leftovers():
    deadline = time.time() + 3
    while True:
        probs = []
        for d in state_dirs():
            probs.append("state dir " + d)
        probs += ["cgroup " + c for c in our_cgroups()]
        probs += ["mount " + m for m in our_mounts()]
        probs += ["process %d rooted in %s" % (p, tmp) for p in rooted_in_tmp()]
        probs += ["zombie child %d" % p for p in my_zombies()]
        if not probs or time.time() > deadline:
            return probs
        time.sleep(0.05)

BASE_FDS = fd_count()
BASE_ZOMBIES = host_zombies()
figures = []

def check(phase, t0, n, extra=""):
    secs = time.time() - t0
    probs = leftovers()
    fds = fd_count()
    if fds != BASE_FDS:
        probs.append("caller fd count %d, was %d" % (fds, BASE_FDS))
    # Zombies re-parented to PID 1 are its to reap (on this VM it does so lazily): figures only.
    zdelta = host_zombies() - BASE_ZOMBIES
    if GLOBAL:
        stray = skiff_procs()
        if stray:
            probs.append("skiff processes still running: %s" % stray)
    for p in probs:
        fail("%s: left behind: %s" % (phase, p))
    line = "%-6s %6d runs in %7.1fs (%6.1f/s)  leaks: %d  caller fds: %d->%d  host zombies %+d%s" % (
        phase, n, secs, n / secs if secs else 0, len(probs), BASE_FDS, fds, zdelta, extra)
    figures.append(line)
    print(line, flush=True)
    # Clean up anyway so that one leak does not cascade into the next phase.
    for d in state_dirs():
        sk("delete", "--force", d)

# ---- phases ----
def phase_seq():
    write_spec(["sleep", "1000"])
    t0 = time.time()
    for i in range(CYCLES):
        lifecycle(new_id("seq"))
    check("seq", t0, CYCLES)

def phase_conc():
    write_spec(["sleep", "1000"])
    t0 = time.time()
    with cf.ThreadPoolExecutor(CONCURRENT) as ex:
        list(ex.map(lambda _: lifecycle(new_id("conc")), range(CONCURRENT)))
    check("conc", t0, CONCURRENT)

def phase_mixed():
    write_spec(["sleep", "1000"])
    t0 = time.time()
    tally = {}
    for r in range(MIXED_ROUNDS):
        cid = new_id("mix")
        sk("create", "--bundle", bundle, cid, check=True)
        ops = [rng.choice(["state", "start", "kill", "exec", "pause", "resume", "delete", "delete-f", "list"])
               for _ in range(MIXED)]
        def one(op):
            if op == "state":
                p = sk("state", cid, out=subprocess.PIPE)
                if p is not None and p.returncode == 0:
                    try:
                        json.loads(p.stdout)
                    except ValueError:
                        fail("mixed: state printed no JSON: %r" % p.stdout[:200])
            elif op == "list":
                p = sk("list", "--format", "json", out=subprocess.PIPE)
                if p is not None and p.returncode != 0:
                    fail("mixed: list failed: %s" % p.stderr.decode(errors="replace"))
            elif op == "start":
                p = sk("start", cid)
            elif op == "kill":
                p = sk("kill", cid, "KILL")
            elif op == "exec":
                p = sk("exec", cid, "true")
            elif op == "pause":
                p = sk("pause", cid)
            elif op == "resume":
                p = sk("resume", cid)
            elif op == "delete":
                p = sk("delete", cid)
            else:
                p = sk("delete", "--force", cid)
            with lock:
                k = (op, "ok" if p is not None and p.returncode == 0 else "refused")
                tally[k] = tally.get(k, 0) + 1
        with cf.ThreadPoolExecutor(MIXED) as ex:
            futures = {ex.submit(one, op): op for op in ops}
            cf.wait([f for f, op in futures.items() if op != "exec"])
            # An exec whose program was running when a pause came is frozen with the rest of
            # the container until a resume (as in runc and Docker); its setup never is (a pause
            # waits for it). After the other commands, resume such a container to let it end.
            pending = [f for f, op in futures.items() if op == "exec" and not f.done()]
            if pending and cf.wait(pending, timeout=5).not_done:
                st = state(cid)
                if st is not None and st["status"] == "paused":
                    with lock:
                        tally[("round", "with an exec frozen by a pause")] = tally.get(("round", "with an exec frozen by a pause"), 0) + 1
                    sk("resume", cid)
        # Whatever state the round ended in, delete --force must finish it off.
        sk("delete", "--force", cid, check=True)
        if os.path.exists(os.path.join(root, cid)):
            fail("mixed: delete --force left %s" % cid)
    t = ", ".join("%s %s %d" % (k[0], k[1], v) for k, v in sorted(tally.items()))
    check("mixed", t0, MIXED_ROUNDS * MIXED, "\n       outcomes: " + t)

def read_state_file(cid, where):
    path = os.path.join(root, cid, "state.json")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    try:
        return json.loads(data)
    except ValueError:
        fail("%s: half-written state file %s: %r" % (where, path, data[:200]))
        return None

def cgroup_pids(cid):
    pids = set()
    for h in ("pids", "memory", "freezer", "unified", ""):
        f = os.path.join("/sys/fs/cgroup", h, "skiff", cid, "cgroup.procs")
        try:
            with open(f) as fh:
                pids.update(int(x) for x in fh.read().split())
        except OSError:
            pass
    return pids

def crash_one(op, delay, tally):
    cid = new_id("crash-" + op)
    if op in ("start", "exec", "delete"):
        sk("create", "--bundle", bundle, cid, check=True)
    if op in ("exec", "delete"):
        sk("start", cid, check=True)
    argv = {"create": ["create", "--bundle", bundle, cid], "start": ["start", cid],
            "exec": ["exec", cid, "sleep", "1000"], "delete": ["delete", "--force", cid]}[op]
    p = subprocess.Popen([SKIFF, "--root", root] + argv, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    p.send_signal(signal.SIGKILL)
    rc = p.wait()
    tally[(op, "killed" if rc == -9 else "finished")] = tally.get((op, "killed" if rc == -9 else "finished"), 0) + 1
    read_state_file(cid, "after killing " + op)
    # list must answer, and say what really is.
    lp = sk("list", "--format", "json", out=subprocess.PIPE, timeout=10)
    if lp is None or lp.returncode != 0:
        fail("list after killing %s failed" % op)
    else:
        try:
            listed = {c["id"]: c for c in (json.loads(lp.stdout) or [])}
        except ValueError:
            listed = {}
            fail("list printed no JSON after killing %s" % op)
        c = listed.get(cid)
        live = {x for x in cgroup_pids(cid) if (pid_stat(x) or ["Z"])[0] not in "ZX"}
        if c is not None:
            if c["status"] == "stopped" and live:
                tally[(op, "listed stopped with live processes")] = tally.get((op, "listed stopped with live processes"), 0) + 1
                if os.environ.get("STRICT_LIST", "1") == "1":
                    fail("after killing %s at %.4fs: list says %s is stopped but its cgroup holds live %s" % (op, delay, cid, sorted(live)))
            if c["status"] in ("created", "running") and c.get("pid", 0) and pid_stat(c["pid"]) is None:
                fail("after killing %s: list says %s is %s but pid %s is gone" % (op, cid, c["status"], c["pid"]))
    d = sk("delete", "--force", cid)
    if d is None or d.returncode != 0:
        fail("delete --force %s after killing %s at %.4fs failed: %s" % (cid, op, delay, d and d.stderr.decode(errors="replace")))
    if os.path.exists(os.path.join(root, cid)):
        fail("delete --force left the state dir of %s (killed %s)" % (cid, op))
    left = {x for x in cgroup_pids(cid) if (pid_stat(x) or ["Z"])[0] not in "ZX"}
    if left:
        fail("processes %s of %s survive delete --force (killed %s)" % (sorted(left), cid, op))

def op_duration(op):
    """Median wall time of op when not killed, to spread the kill delays over it."""
    times = []
    for _ in range(3):
        cid = new_id("time-" + op)
        if op in ("start", "exec", "delete"):
            sk("create", "--bundle", bundle, cid, check=True)
        if op in ("exec", "delete"):
            sk("start", cid, check=True)
        argv = {"create": ["create", "--bundle", bundle, cid], "start": ["start", cid],
                "exec": ["exec", cid, "true"], "delete": ["delete", "--force", cid]}[op]
        t = time.time()
        sk(*argv)
        times.append(time.time() - t)
        sk("delete", "--force", cid)
    return sorted(times)[1]

def phase_crash():
    write_spec(["sleep", "1000"])
    ops = ["create", "start", "exec", "delete"]
    durs = {op: op_duration(op) for op in ops}
    t0 = time.time()
    tally = {}
    # A reader that keeps parsing every state file while skiff is being killed mid-write.
    stop = threading.Event()
    reads = [0]
    def reader():
        while not stop.is_set():
            for d in state_dirs():
                read_state_file(d, "concurrent read")
                reads[0] += 1
    th = threading.Thread(target=reader)
    th.start()
    try:
        for i in range(CRASH):
            op = ops[i % len(ops)]
            # Mostly inside the command, sometimes just past its end.
            crash_one(op, rng.uniform(0, durs[op] * 1.2), tally)
    finally:
        stop.set()
        th.join()
    t = ", ".join("%s %s %d" % (k[0], k[1], v) for k, v in sorted(tally.items()))
    d = ", ".join("%s %.1fms" % (k, v * 1000) for k, v in durs.items())
    check("crash", t0, CRASH, "\n       durations: %s\n       outcomes: %s\n       state files parsed concurrently: %d" % (d, t, reads[0]))

def phase_caller():
    """The caller of create/run dies (SIGKILL) while skiff works for it: skiff must finish or
    leave something delete --force removes, never an undeletable running container."""
    write_spec(["sleep", "1000"])
    t0 = time.time()
    tally = {}
    for i in range(CALLER):
        cid = new_id("caller")
        cmd = "create --bundle %s %s" % (bundle, cid) if i % 2 == 0 else "run --bundle %s %s" % (bundle, cid)
        # The caller: a shell that starts skiff and waits for it, killed alone.
        caller = subprocess.Popen(["sh", "-c", "%s --root %s %s </dev/null >/dev/null 2>&1 & echo $!; wait" % (SKIFF, root, cmd)],
                                  stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        skpid = int(caller.stdout.readline())
        caller.stdout.close()
        time.sleep(rng.uniform(0, 0.05))
        caller.send_signal(signal.SIGKILL)
        caller.wait()
        # skiff (orphaned) goes on; for create it ends on its own; run waits for the container.
        deadline = time.time() + 10
        while i % 2 == 0 and pid_stat(skpid) and pid_stat(skpid)[0] not in "ZX" and time.time() < deadline:
            time.sleep(0.005)
        st = state(cid)
        k = st["status"] if st else "absent"
        tally[k] = tally.get(k, 0) + 1
        sk("delete", "--force", cid, check=True)
        deadline = time.time() + 10
        while pid_stat(skpid) and pid_stat(skpid)[0] not in "ZX" and time.time() < deadline:
            time.sleep(0.005)
        if pid_stat(skpid) and pid_stat(skpid)[0] not in "ZX":
            fail("skiff %s (pid %d) still runs after its container was deleted" % (cmd.split()[0], skpid))
    t = ", ".join("%s %d" % kv for kv in sorted(tally.items()))
    check("caller", t0, CALLER, "\n       container status after the caller died: " + t)

PHASES = {"seq": phase_seq, "conc": phase_conc, "mixed": phase_mixed, "crash": phase_crash, "caller": phase_caller}
want = sys.argv[1:] or list(PHASES)
print("skiff stress: %s, seed %d, tmp %s" % (SKIFF, SEED, tmp), flush=True)
try:
    for ph in want:
        if ph not in PHASES:
            sys.exit("unknown phase %r (phases: %s)" % (ph, " ".join(PHASES)))
        PHASES[ph]()
finally:
    for d in state_dirs():
        sk("delete", "--force", d)
    if not our_mounts():
        shutil.rmtree(tmp, ignore_errors=True)
print("---- figures (seed %d) ----" % SEED)
for l in figures:
    print(l)
if failures:
    print("%d failures" % len(failures))
    sys.exit(1)
print("no leaks, no failures")
' "$@"
