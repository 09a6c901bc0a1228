#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Boot the built kernel in QEMU (software emulation) and run tests in it.

The guest is a busybox initramfs (harness/guest-init.sh as /init) carrying
statically linked test programs.  Programs come from a manifest, one per
line: `NAME TIMEOUT HOST_PATH [ARGS...]`.  The kernel console goes to
serial port 0, the programs' reports to serial port 1; both are kept in
build/results/RUN/.  A case fails when its program says so (KTAP `not ok`,
or a non-zero exit without KTAP), when it times out, or when the kernel
logs a WARN, BUG, oops or lockdep splat while it runs.  The whole run fails
when the guest does not boot, does not show the CPUs asked for, logs
kernel trouble anywhere, or does not finish within its time limit.
With --kunit, the KUnit results the kernel prints at boot are counted too.

Prints one line per case, then `RUN: N passed, N failed, N skipped`, and
writes the same counts to build/results/RUN/counts; exits 1 on any failure.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("BUILD", os.path.join(REPO, "build"))
BUSYBOX = "/bin/busybox"

# What the kernel prints when something is wrong.  A WARN prints
# "WARNING: CPU: ..."; lockdep's reports start with "WARNING:" too.
TROUBLE = re.compile(
    r"(WARNING: |BUG: |BUG at |kernel BUG|Oops|general protection fault|"
    r"UBSAN: |Kernel panic|RCU detected stall|rcu: INFO:|"
    r"self-detected stall|blocked for more than|panicked at|"
    r"refcount_t: |list_add corruption|list_del corruption|"
    r"unreferenced object|Call Trace:|ODEBUG: |KASAN: |kmemleak: [1-9])")
# The end of a report, when it has one; else it is quoted up to REPORT_MAX.
REPORT_END = re.compile(r"---\[ end trace|^={20,}$")
REPORT_MAX = 60
# An allocation that failed without __GFP_NOWARN: warn_alloc() dumps the
# stack.  Not a bug, and what fault injection provokes on purpose.
ALLOC_FAILURE = re.compile(r"(page allocation failure: |vmalloc error: )")
TIMESTAMP = re.compile(r"^\[\s*\d+\.\d+\]\s?")
KTAP_RESULT = re.compile(
    r"^(not ok|ok) (\d+)(?: -)? ?([^#]*?)\s*(?:#\s*(SKIP|XFAIL|TODO)\b.*)?$")


class Case:
    def __init__(self, name, verdict, why=""):
        self.name, self.verdict, self.why = name, verdict, why

    def line(self):
        tag = {"pass": "ok", "fail": "FAIL", "skip": "skip"}[self.verdict]
        return f"  {tag:4} {self.name}" + (f": {self.why}" if self.why else "")


def build_initramfs(workdir, manifest, extra=None):
    root = os.path.join(workdir, "root")
    shutil.rmtree(root, ignore_errors=True)
    if extra:
        # Files the programs need besides themselves (libraries, data).
        shutil.copytree(extra, root, symlinks=True)
    for d in ("bin", "sbin", "proc", "sys", "dev", "tmp", "tests"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    shutil.copy2(BUSYBOX, os.path.join(root, "bin", "busybox"))
    shutil.copy2(os.path.join(REPO, "harness", "guest-init.sh"),
                 os.path.join(root, "init"))
    lines = []
    for name, tmo, path, args in manifest:
        dst = os.path.join(root, "tests", name)
        shutil.copy2(path, dst)
        os.chmod(dst, 0o755)
        lines.append(" ".join([name, str(tmo), "./" + name, *args]))
    with open(os.path.join(root, "tests", "list"), "w") as f:
        f.write("\n".join(lines) + "\n")
    cpio = os.path.join(workdir, "initramfs.cpio")
    names = subprocess.run(["find", "."], cwd=root, capture_output=True,
                           text=True, check=True).stdout
    with open(cpio, "wb") as out:
        subprocess.run(["cpio", "--quiet", "-o", "-H", "newc",
                        "--owner=0:0"], cwd=root, input=names.encode(),
                       stdout=out, check=True)
    return cpio


def read_manifest(path):
    out = []
    if not path:
        return out
    with open(path) as f:
        for n, line in enumerate(f, 1):
            parts = line.split()
            if not parts or parts[0].startswith("#"):
                continue
            if len(parts) < 3 or not parts[1].isdigit():
                sys.exit(f"guest: {path}:{n}: want NAME TIMEOUT PATH [ARGS]")
            if not os.path.isfile(parts[2]):
                sys.exit(f"guest: {path}:{n}: no program {parts[2]}")
            out.append((parts[0], int(parts[1]), parts[2], parts[3:]))
    return out


def boot(args, cpio, workdir):
    console = os.path.join(workdir, "console.log")
    results = os.path.join(workdir, "results.log")
    append = ["console=ttyS0", "panic=-1", "printk.time=1",
              "kunit.enable=1" if args.kunit else "kunit.enable=0"]
    if args.kunit:
        # 7.3 runs built-in suites at boot only with autorun.
        append.append("kunit.autorun=1")
    if args.kunit:
        append.append(f"kunit.filter_glob={args.kunit}")
    append += args.append.split()
    # No LA57: 7.3's identify_cpu() clears the boot CPU's feature words
    # with interrupts on, so an interrupt in that window sees 4-level
    # KASAN bounds and reports its 5-level irq_desc as a wild access.
    # -icount: one guest ns per instruction, so guest clocks count
    # instructions, deterministically (single-threaded TCG runs the vCPUs
    # in turn; sleep=off lets idle time pass at once).
    accel = ["-accel", "tcg,thread=multi"]
    if args.icount:
        accel = ["-accel", "tcg,thread=single",
                 "-icount", "shift=0,align=off,sleep=off"]
    # --numa: two sockets, each a NUMA node with its own memory and its
    # own last level cache (QEMU gives one per socket), so that the
    # nearest fallback has a near and a far side.  A node boundary
    # within a socket would trip the kernel's topology_sane() warning.
    smp, numa = [str(args.cpus)], []
    if args.numa:
        if args.cpus % 2:
            sys.exit("guest: --numa needs an even number of CPUs")
        half = args.cpus // 2
        smp = [f"{args.cpus},sockets=2,cores={half},threads=1"]
        mem = parse_mem(args.mem)
        for node in range(2):
            numa += ["-object",
                     f"memory-backend-ram,id=m{node},size={mem // 2}M",
                     "-numa", f"node,nodeid={node},"
                     f"cpus={node * half}-{node * half + half - 1},"
                     f"memdev=m{node}"]
    cmd = [args.qemu, *accel, "-cpu", "max,la57=off",
           "-smp", *smp, *numa, "-m", args.mem, "-nodefaults",
           "-no-user-config", "-display", "none", "-no-reboot",
           "-kernel", args.kernel, "-initrd", cpio,
           "-append", " ".join(append),
           "-serial", f"file:{console}", "-serial", f"file:{results}"]
    t0 = time.time()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    timed_out = False
    try:
        qemu_out = proc.communicate(timeout=args.timeout)[0]
    except subprocess.TimeoutExpired:
        proc.kill()
        qemu_out = proc.communicate()[0]
        timed_out = True
    elapsed = time.time() - t0
    with open(os.path.join(workdir, "qemu.log"), "wb") as f:
        f.write(qemu_out or b"")
    return console, results, timed_out, elapsed, proc.returncode


def read_text(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def parse_program(name, lines, rc, timed_out, tmo, kmsg):
    cases, plan = [], None
    for line in lines:
        m = re.match(r"^1\.\.(\d+)$", line)
        if m and plan is None:
            plan = int(m.group(1))
            continue
        m = KTAP_RESULT.match(line)
        if not m:
            continue
        status, _, desc, directive = m.groups()
        cname = f"{name}:{desc.strip() or m.group(2)}"
        if directive in ("SKIP",):
            cases.append(Case(cname, "skip"))
        elif status == "ok" or directive in ("XFAIL", "TODO"):
            cases.append(Case(cname, "pass"))
        else:
            cases.append(Case(cname, "fail", "the test reports not ok"))
    failed = any(c.verdict == "fail" for c in cases)
    trouble = [TIMESTAMP.sub("", k).strip()
               for k in excuse_alloc_failures(kmsg) if TROUBLE.search(k)]
    if timed_out:
        cases.append(Case(name, "fail", f"timed out after {tmo} s "
                                        "(killed by the guest watchdog)"))
    elif not cases:
        if rc == 0 and trouble:
            pass  # Reported below, instead of a pass.
        elif rc == 0:
            cases.append(Case(name, "pass"))
        elif rc == 4:
            cases.append(Case(name, "skip", "exit code 4 (KSFT_SKIP)"))
        else:
            cases.append(Case(name, "fail", f"exit code {rc}"))
    else:
        if plan is not None and len(cases) < plan:
            cases.append(Case(name, "fail", f"only {len(cases)} of {plan} "
                                            "planned cases reported"))
        if rc not in (0, 4) and not failed:
            cases.append(Case(name, "fail", f"exit code {rc} although "
                                            "every case passed"))
    if trouble:
        cases.append(Case(name, "fail", "kernel trouble in the guest log "
                                        f"while it ran: {trouble[0]}"))
    return cases


def parse_results(text):
    """Split the ttyS1 report into per-program records."""
    booted, done, progs, cur = None, False, [], None
    for raw in text.splitlines():
        line = raw.rstrip("\r")
        if line.startswith("@@ BOOTED "):
            booted = dict(kv.split("=", 1) for kv in line[10:].split())
        elif line.startswith("@@ START "):
            cur = {"name": line[9:].strip(), "out": [], "kmsg": [],
                   "end": None, "section": "out"}
            progs.append(cur)
        elif line.startswith("@@ KMSG ") and cur:
            cur["section"] = "kmsg"
        elif line.startswith("@@ END ") and cur:
            kv = dict(x.split("=", 1) for x in line.split()[3:])
            cur["end"] = (int(kv.get("rc", "-1")), kv.get("timeout") == "1")
            cur = None
        elif line == "@@ DONE":
            done = True
        elif cur:
            cur[cur["section"]].append(line)
    return booted, done, progs


def parse_kunit(console_lines):
    """Count the KUnit cases of the boot log: a suite's cases are the
    result lines indented by one level (4 spaces)."""
    cases, suite = [], None
    for line in console_lines:
        m = re.match(r"^    # Subtest: (\S+)", line)
        if m:
            suite = m.group(1)
            continue
        m = re.match(r"^    (not ok|ok) \d+ ([^#]*?)\s*(?:# (SKIP).*)?$",
                     line)
        if m and suite:
            name = f"kunit:{suite}.{m.group(2).strip()}"
            if m.group(3):
                cases.append(Case(name, "skip"))
            elif m.group(1) == "ok":
                cases.append(Case(name, "pass"))
            else:
                cases.append(Case(name, "fail", "KUnit reports not ok"))
    return cases


def excuse_alloc_failures(lines):
    """`lines` without the stack traces of allocation-failure warnings."""
    out, excuse = [], 0
    for ln in lines:
        if ALLOC_FAILURE.search(ln):
            excuse = 8  # the trace follows the CPU and hardware lines
        elif excuse and "Call Trace:" in ln:
            excuse = 0
            continue
        elif excuse:
            excuse -= 1
        out.append(ln)
    return out


def quote_report(clines, first):
    """The console lines of the report that starts with line `first`."""
    start = next(i for i, ln in enumerate(clines) if ln.strip() == first)
    # KASAN and lockdep frame their reports with a line of '='.
    if start and re.match(r"^={20,}$", clines[start - 1].strip()):
        start -= 1
    out = []
    for ln in clines[start:start + REPORT_MAX]:
        out.append(ln)
        if len(out) > 2 and REPORT_END.search(ln.strip()):
            break
    return out


def parse_mem(mem):
    """QEMU's -m size (e.g. 1G, 512M) in MiB."""
    units = {"M": 1, "G": 1024}
    if mem[-1:].upper() in units:
        return int(mem[:-1]) * units[mem[-1:].upper()]
    return int(mem)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name", required=True, help="results folder name")
    # The debug kernel (harness/kbuild-debug.sh): KASAN, lockdep, kmemleak.
    ap.add_argument("--kernel", default=os.path.join(
        BUILD, "kbuild-debug", "arch", "x86", "boot", "bzImage"))
    ap.add_argument("--manifest", help="programs to run")
    ap.add_argument("--cpus", type=int, default=4)
    ap.add_argument("--mem", default="1G")
    ap.add_argument("--numa", action="store_true",
                    help="two NUMA nodes (sockets) of half the CPUs each")
    ap.add_argument("--timeout", type=int, default=600,
                    help="seconds for the whole guest run")
    ap.add_argument("--kunit", metavar="GLOB",
                    help="run and count the KUnit suites matching GLOB")
    ap.add_argument("--append", default="", help="more kernel parameters")
    ap.add_argument("--show-output", action="store_true",
                    help="print the programs' output")
    ap.add_argument("--qemu", default="qemu-system-x86_64")
    ap.add_argument("--icount", action="store_true",
                    help="count instructions: guest ns = instructions")
    ap.add_argument("--extra", metavar="DIR",
                    help="a tree to lay out in the guest's root first")
    args = ap.parse_args()

    workdir = os.path.join(BUILD, "results", args.name)
    shutil.rmtree(workdir, ignore_errors=True)
    os.makedirs(workdir)
    manifest = read_manifest(args.manifest)
    if not os.path.isfile(args.kernel):
        sys.exit(f"guest: no kernel at {args.kernel}")
    cpio = build_initramfs(workdir, manifest, args.extra)
    console, results, timed_out, elapsed, qrc = boot(args, cpio, workdir)
    ctext = read_text(console)
    clines = [TIMESTAMP.sub("", ln.rstrip("\r")) for ln in ctext.splitlines()]
    booted, done, progs = parse_results(read_text(results))

    cases, run_problems = [], []
    if not booted:
        run_problems.append("the guest never reached /init")
    else:
        online = int(booted.get("online", "0"))
        if online != args.cpus:
            run_problems.append(f"the guest shows {online} CPU(s) online, "
                                f"not the {args.cpus} asked for")
    tmo_of = {m[0]: m[1] for m in manifest}
    for p in progs:
        name = p["name"]
        if p["end"] is None:
            cases.append(Case(name, "fail", "the guest stopped while it ran"
                                            " (hang, panic or reboot)"))
            continue
        rc, to = p["end"]
        cases += parse_program(name, p["out"], rc, to, tmo_of.get(name),
                               p["kmsg"])
    ran = {p["name"] for p in progs}
    for name, *_ in manifest:
        if name not in ran:
            cases.append(Case(name, "fail", "never started"))
    if args.kunit:
        kcases = parse_kunit(clines)
        if not kcases:
            run_problems.append(f"no KUnit results for '{args.kunit}' in "
                                "the boot log")
        cases += kcases
    if timed_out:
        last = progs[-1]["name"] if progs else "none"
        run_problems.append(f"the guest did not finish within "
                            f"{args.timeout} s (last program started: "
                            f"{last}); killed")
    elif not done:
        panic = [ln for ln in clines if "Kernel panic" in ln]
        run_problems.append("the guest stopped before finishing" +
                            (f": {panic[0].strip()}" if panic else
                             f" (qemu exit {qrc})"))
    # Trouble while a program ran is blamed on it above; the rest (boot,
    # between programs, after them) fails the run itself.
    blamed = {TIMESTAMP.sub("", k).strip() for p in progs for k in p["kmsg"]}
    trouble = [ln.strip() for ln in excuse_alloc_failures(clines)
               if TROUBLE.search(ln)]
    unblamed = [ln for ln in trouble if ln not in blamed]
    if unblamed:
        run_problems.append("kernel trouble in the guest log outside any "
                            f"program: {unblamed[0]}")
    for prob in run_problems:
        cases.append(Case(f"guest:{args.name}", "fail", prob))

    if args.show_output:
        for p in progs:
            print(f"--- {p['name']} ---")
            print("\n".join(p["out"]))
    counts = {v: sum(1 for c in cases if c.verdict == v)
              for v in ("pass", "fail", "skip")}
    print(f"guest run '{args.name}': {args.cpus} vCPUs, {elapsed:.0f} s; "
          f"logs in {os.path.relpath(workdir, REPO)}/")
    for c in cases:
        print(c.line())
    with open(os.path.join(workdir, "counts"), "w") as f:
        json.dump(counts, f)
    print(f"{args.name}: {counts['pass']} passed, {counts['fail']} failed, "
          f"{counts['skip']} skipped")
    if counts["fail"]:
        # The next run of the same name replaces workdir: keep the
        # console of a failed one.
        kept = os.path.join(BUILD, "logs", f"{args.name}-failed-"
                            f"{time.strftime('%Y%m%d-%H%M%S')}.console.log")
        os.makedirs(os.path.dirname(kept), exist_ok=True)
        shutil.copyfile(console, kept)
        print(f"console kept in {os.path.relpath(kept, REPO)}")
        if trouble:
            print("first kernel report, quoted from the guest's console:")
            for ln in quote_report(clines, trouble[0]):
                print("  | " + ln)
        sys.exit(1)


if __name__ == "__main__":
    main()
