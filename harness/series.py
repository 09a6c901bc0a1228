#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Assemble the SO_REUSERPS series onto the base tree, write it, check it.

The repository keeps every file the series adds at its kernel path and
every change to an existing file as a patch in patches/.  The file
`series` says which commit carries what.  This tool turns that into:

  base      build/linux: the unpacked base tarball as a git repository,
            its first commit tagged `base` (done once, then reused).
  assemble  one commit per `series` entry on branch `series`, built with
            a private index so that the work tree is touched only at the
            end and only where content changed (kbuild stays incremental).
  format    the messages that would be mailed, written by b4 (`b4 prep`,
            `b4 send -o`) into build/series/, and build/series/series.mbox.
  verify    `b4 am` of that mbox, then `git am` onto a fresh base, must give
            the very same tree; every patch passes checkpatch --strict
            --codespell and keeps C, shell and Makefile lines within 80
            columns.

The From:/Signed-off-by: identity (and the MAINTAINERS entry's M: line)
is REUSERPS_AUTHOR ("Name <email>"), else the repository's git config
user.name/user.email, else the placeholder of `series`' author: line.
  edit/refresh  open a patch of patches/ in a scratch work tree at the
            state it applies to, and write the edited diff back.
  absorb    the inverse of assemble: after the commits of branch `series`
            (or REV) were rewritten by hand, write their new files and
            the diffs of their patches back into the repository.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("BUILD", os.path.join(REPO, "build"))
TREE = os.path.join(BUILD, "linux")
OUTDIR = os.path.join(BUILD, "series")
# The base: Debian's linux-source-7.3 at one exact version, fetched by
# harness/fetch-base.sh unless BASE_TARBALL names a tarball.
TARBALL = os.environ.get("BASE_TARBALL")
TREE_PREFIX = os.environ.get("TREE_PREFIX", "net-next")
B4 = os.path.join(BUILD, "venv", "bin", "b4")


def die(msg):
    print(f"series: {msg}", file=sys.stderr)
    sys.exit(1)


def git(*args, cwd=TREE, env=None, inp=None, check=True, raw=False):
    """Runs git; its output stripped, or as it is with raw=True."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    res = subprocess.run(["git", *args], cwd=cwd, env=full_env, input=inp,
                         capture_output=True, text=True)
    if check and res.returncode:
        die(f"git {' '.join(args)} failed:\n{res.stderr.strip()}")
    return res.stdout if raw else res.stdout.strip()


class Commit:
    def __init__(self, subject, lineno):
        self.subject = subject
        self.lineno = lineno
        self.files = []
        self.patches = []
        self.body = []


def parse_series(path=os.path.join(REPO, "series"), new_ok=False):
    """Parse `series`: a header (author, cover letter), then commits.

    Lines starting with '#' are comments.  `author:` and `cover:` lines
    come first; the cover letter's text follows `cover:` up to the first
    `subject:`.  Each commit is `subject:`, then `files:` and `patches:`
    lines (space-separated, may repeat), a blank line and the message.
    With new_ok=True, listed files may be missing (absorb writes them).
    """
    author, cover_subject, cover_body, commits = None, None, [], []
    cur = None
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    in_header = True
    for n, line in enumerate(lines, 1):
        if line.startswith("#"):
            continue
        m = re.match(r"^(author|cover|subject|files|patches):\s*(.*)$", line)
        key, val = (m.group(1), m.group(2).strip()) if m else (None, None)
        if key == "subject":
            cur = Commit(val, n)
            commits.append(cur)
            in_header = False
        elif key == "author" and in_header:
            author = val
        elif key == "cover" and in_header:
            cover_subject = val
        elif key in ("files", "patches") and cur and not cur.body:
            getattr(cur, key).extend(val.split())
        elif in_header:
            if cover_subject is not None:
                cover_body.append(line)
        else:
            cur.body.append(line)
    if not author or not re.match(r"^[^<>]+ <[^<>@]+@[^<>]+>$", author):
        die("series: missing or malformed 'author: Name <email>' line")
    if not cover_subject:
        die("series: missing 'cover:' line")
    if not commits:
        die("series: no commits")
    seen = set()
    for c in commits:
        if not c.subject or len(c.subject) > 75:
            die(f"series:{c.lineno}: subject empty or over 75 characters")
        if c.subject in seen:
            die(f"series:{c.lineno}: duplicate subject '{c.subject}'")
        seen.add(c.subject)
        for f in c.files:
            if not new_ok and not os.path.isfile(os.path.join(REPO, f)):
                die(f"series:{c.lineno}: no such file '{f}'")
        for p in c.patches:
            if not os.path.isfile(os.path.join(REPO, "patches", p)):
                die(f"series:{c.lineno}: no such patch 'patches/{p}'")
        c.body = "\n".join(c.body).strip("\n")
        if not c.body:
            die(f"series:{c.lineno}: commit '{c.subject}' has no message")
    check_one_home(commits)
    return author, cover_subject, "\n".join(cover_body).strip("\n"), commits


def check_one_home(commits):
    """Every new file and patch belongs to exactly one commit, and every
    new file and patch in the repository belongs to one."""
    where = {}
    for c in commits:
        for item in c.files + ["patches/" + p for p in c.patches]:
            if item in where:
                die(f"'{item}' is listed twice (also in '{where[item]}')")
            where[item] = c.subject
    listed = set(where)
    for p in sorted(os.listdir(os.path.join(REPO, "patches"))):
        if p.endswith(".patch") and "patches/" + p not in listed:
            die(f"patches/{p} is in no commit of `series`")
    for top in KERNEL_DIRS:
        for root, _, names in os.walk(os.path.join(REPO, top)):
            for name in names:
                rel = os.path.relpath(os.path.join(root, name), REPO)
                if rel not in listed:
                    die(f"{rel} is in no commit of `series`")


# Top-level folders of the repository that mirror the kernel tree.
KERNEL_DIRS = ("Documentation", "include", "net", "rust", "tools", "arch",
               "lib", "scripts")


def identity(placeholder, quiet=False):
    """The poster's "Name <email>" and where it came from."""
    ident, where = os.environ.get("REUSERPS_AUTHOR", "").strip(), \
        "REUSERPS_AUTHOR"
    if not ident:
        name = git("config", "user.name", cwd=REPO, check=False)
        email = git("config", "user.email", cwd=REPO, check=False)
        if name and email:
            ident, where = f"{name} <{email}>", \
                "git config user.name/user.email"
    if ident and not re.match(r"^[^<>]+ <[^<>@]+@[^<>]+>$", ident):
        die(f"{where}: '{ident}' is not 'Name <email>'")
    if not ident:
        ident, where = placeholder, None
    if not quiet:
        if where:
            print(f"series: From:/Signed-off-by: {ident} ({where})")
        else:
            print(f"series: From:/Signed-off-by: the placeholder {ident}: "
                  "neither REUSERPS_AUTHOR nor git config user.name and "
                  "user.email is set; set one before posting")
    return ident


def patch_text(path, placeholder, ident):
    """A patch of patches/, the MAINTAINERS entry naming the poster."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    return text.replace(placeholder, ident)


def author_env(author, date):
    name, email = re.match(r"^(.*) <(.*)>$", author).groups()
    return {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email,
            "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email,
            "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}


def series_date():
    # The date of the repository's HEAD commit: the same input gives the
    # same commits (and hashes) on every machine, which makes re-runs
    # no-ops and `make series` output reproducible.
    out = subprocess.run(["git", "log", "-1", "--format=%ct"], cwd=REPO,
                         capture_output=True, text=True).stdout.strip()
    return f"{out or '1764115200'} +0000"


def cmd_base(_args):
    if os.path.isdir(os.path.join(TREE, ".git")) and \
            git("tag", "-l", "base") == "base":
        return
    t0 = time.time()
    if os.path.exists(TREE):
        shutil.rmtree(TREE)
    os.makedirs(BUILD, exist_ok=True)
    tmp = TREE + ".unpack"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    tarball = TARBALL or subprocess.run(
        [os.path.join(REPO, "harness", "fetch-base.sh")], check=True,
        stdout=subprocess.PIPE, text=True).stdout.strip()
    print(f"series: unpacking {tarball}", flush=True)
    subprocess.run(["tar", "-xf", tarball, "-C", tmp], check=True)
    (top,) = os.listdir(tmp)
    os.rename(os.path.join(tmp, top), TREE)
    os.rmdir(tmp)
    git("init", "-q", "-b", "base-branch")
    git("config", "core.autocrlf", "false")
    git("config", "gc.auto", "0")
    # -f: the tarball is the base as shipped, ignored names included.
    git("add", "-A", "-f", ".")
    with open(os.path.join(TREE, "Makefile"), encoding="utf-8") as f:
        head = f.read(200)
    ver = ".".join(re.findall(r"^(?:VERSION|PATCHLEVEL|SUBLEVEL) = (\d+)",
                              head, re.M))
    env = author_env("Base Tarball <base@localhost>", "1764115200 +0000")
    git("commit", "-q", "-m", f"Linux {ver} (base: {os.path.basename(tarball)})",
        env=env)
    git("tag", "base")
    print(f"series: base tree ready in {time.time() - t0:.0f} s")


def file_mode(path):
    return "100755" if os.access(path, os.X_OK) else "100644"


def staged_files(commits, placeholder, author):
    """What each commit adds of a new file that later commits change.

    A new file has one home, its kernel path here, as the series leaves
    it.  A later commit that changes it does so by a patch of patches/ (a
    new file grows by seams: a module, its KUnit tests).  The commit that
    adds it adds the file as it was before: the later patches reversed,
    last first.  Returns {(commit index, path): bytes}.
    """
    added = {f for c in commits for f in c.files}
    touching = {}
    for c in commits:
        for p in c.patches:
            paths = patch_paths(p) & added
            if paths:
                touching[p] = sorted(paths)
    if not touching:
        return {}
    staged = {}
    with tempfile.TemporaryDirectory() as tmp:
        for f in sorted({f for ps in touching.values() for f in ps}):
            os.makedirs(os.path.dirname(os.path.join(tmp, f)), exist_ok=True)
            shutil.copyfile(os.path.join(REPO, f), os.path.join(tmp, f))
        for i in reversed(range(len(commits))):
            c = commits[i]
            for f in c.files:
                if os.path.exists(os.path.join(tmp, f)):
                    with open(os.path.join(tmp, f), "rb") as fh:
                        staged[(i, f)] = fh.read()
            for p in reversed(c.patches):
                if p not in touching:
                    continue
                res = subprocess.run(
                    ["git", "apply", "-R"] +
                    [f"--include={f}" for f in touching[p]], cwd=tmp,
                    input=patch_text(os.path.join(REPO, "patches", p),
                                     placeholder, author),
                    capture_output=True, text=True)
                if res.returncode:
                    die(f"patches/{p} does not reverse on the series' "
                        f"files {touching[p]}:\n{res.stderr.strip()}")
    return staged


def cmd_assemble(_args, quiet=False):
    cmd_base(None)
    placeholder, cover_subject, cover_body, commits = parse_series()
    author = identity(placeholder, quiet)
    env_date = series_date()
    index = os.path.join(BUILD, "series.index")
    if os.path.exists(index):
        os.remove(index)
    ienv = {"GIT_INDEX_FILE": index}
    git("read-tree", "base", env=ienv)
    parent = git("rev-parse", "base^{commit}")
    staged = staged_files(commits, placeholder, author)
    for i, c in enumerate(commits):
        for f in c.files:
            src = os.path.join(REPO, f)
            if (i, f) in staged:
                blob = git("hash-object", "-w", "--stdin",
                           inp=staged[(i, f)].decode())
            else:
                blob = git("hash-object", "-w", "--", src)
            git("update-index", "--add", "--cacheinfo",
                f"{file_mode(src)},{blob},{f}", env=ienv)
        for p in c.patches:
            res = subprocess.run(
                ["git", "apply", "--cached", "--whitespace=error-all"],
                cwd=TREE, env={**os.environ, **ienv}, capture_output=True,
                text=True, input=patch_text(
                    os.path.join(REPO, "patches", p), placeholder, author))
            if res.returncode:
                die(f"patches/{p} does not apply (commit '{c.subject}'):\n"
                    f"{res.stderr.strip()}")
        tree = git("write-tree", env=ienv)
        name, email = re.match(r"^(.*) <(.*)>$", author).groups()
        msg = f"{c.subject}\n\n{c.body}\n\nSigned-off-by: {name} <{email}>\n"
        parent = git("commit-tree", tree, "-p", parent,
                     env=author_env(author, env_date), inp=msg)
    os.remove(index)
    git("update-ref", "refs/heads/series", parent)
    git("config", "branch.series.description",
        f"{cover_subject}\n\n{cover_body}\n")
    # b4 formats as this identity and keeps the cover letter there.
    name, email = re.match(r"^(.*) <(.*)>$", author).groups()
    git("config", "user.name", name)
    git("config", "user.email", email)
    git("config", "b4.prep-cover-strategy", "branch-description")
    # Messages are only written (b4 send -o), never sent: tell b4 the
    # poster sends by SMTP so that it does not ask for the web endpoint's
    # signature.
    git("config", "sendemail.smtpServer", "/bin/false")
    # Check the tree out last: only files whose content changed are
    # rewritten, so kbuild rebuilds only what the edit touched.
    if git("symbolic-ref", "-q", "HEAD", check=False) != "refs/heads/series":
        git("checkout", "-q", "-f", "series")
    else:
        git("reset", "-q", "--hard", "series")
    git("clean", "-q", "-fdx", "-e", ".kunit")
    print(f"series: {len(commits)} commit(s) on {TREE} branch series, "
          f"head {parent[:12]}")


def b4(*args, cwd=TREE):
    res = subprocess.run([B4, "--offline-mode", *args], cwd=cwd,
                         capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if res.returncode:
        die(f"b4 {' '.join(args)} failed:\n{res.stdout}{res.stderr}")
    return res.stdout + res.stderr


def cmd_format(_args, posting=True):
    """What would be mailed: b4 prep enrolls the branch (cover letter from
    its description, To:/Cc: from get_maintainer.pl), b4 send -o writes
    the messages; series.mbox holds them in order for b4 am.  What the
    list gets is signed by the poster: without an identity, refuse (verify
    checks a placeholder's series, which nobody posts)."""
    placeholder = parse_series()[0]
    if posting and identity(placeholder, quiet=True) == placeholder:
        die("make series: who posts?  Set REUSERPS_AUTHOR='Name <email>' "
            "or git config user.name and user.email: From:, Signed-off-by: "
            "and MAINTAINERS name the poster, never a placeholder")
    cmd_assemble(None)
    shutil.rmtree(OUTDIR, ignore_errors=True)
    os.makedirs(OUTDIR)
    # A new enrollment each time: the branch was rewritten by assemble.
    for key in ("b4-tracking",):
        git("config", "--unset-all", f"branch.series.{key}", check=False)
    b4("prep", "-e", "base-branch")
    b4("prep", "--set-prefixes", TREE_PREFIX)
    b4("prep", "--auto-to-cc")
    msgs = os.path.join(OUTDIR, "messages")
    b4("send", "-o", msgs, "--no-sign")
    import email
    import mailbox
    names = sorted(f for f in os.listdir(msgs) if f.endswith(".eml"))
    mbox = mailbox.mbox(os.path.join(OUTDIR, "series.mbox"))
    for name in names:
        with open(os.path.join(msgs, name), "rb") as f:
            mbox.add(email.message_from_binary_file(f))
    mbox.flush()
    mbox.close()
    print(f"series: b4 wrote {len(names)} message(s), cover letter "
          f"included, to {msgs} and {OUTDIR}/series.mbox")


# Generic checks checkpatch does not make in the form netdev wants: C,
# headers, shell and Makefiles keep to 80 columns (Rust keeps rustfmt's).
def long_lines(patch_path):
    bad, cur = [], None
    with open(patch_path, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"^\+\+\+ b/(.*)$", line)
            if m:
                cur = m.group(1)
                continue
            if cur and line.startswith("+") and not cur.endswith(".rs") \
                    and not cur.endswith(".rst") and cur != "MAINTAINERS":
                text = line[1:].rstrip("\n").expandtabs(8)
                if len(text) > 80:
                    bad.append(f"{cur}: {len(text)} columns: {text[:60]}...")
    return bad


def codespell_file():
    for cand in ("/usr/share/codespell/dictionary.txt",
                 "/usr/lib/python3/dist-packages/codespell_lib/data/"
                 "dictionary.txt"):
        if os.path.isfile(cand):
            return cand
    return None


def cover_msgid(msgs):
    cover = next(f for f in sorted(os.listdir(msgs)) if f.startswith("0000"))
    with open(os.path.join(msgs, cover), encoding="utf-8") as f:
        m = re.search(r"^Message-Id: <([^>]+)>", f.read(), re.M | re.I)
    if not m:
        die(f"no Message-Id in {cover}")
    return m.group(1)


def maintained(path):
    """Whether get_maintainer.pl names the series' MAINTAINERS entry, or
    for a file outside it (the SO_INCOMING_CPU index's selftest) an
    existing entry of its directory other than THE REST."""
    res = subprocess.run(
        ["perl", "scripts/get_maintainer.pl", "--no-git", "--no-git-fallback",
         "--sections", "-f", path], cwd=TREE, capture_output=True, text=True)
    if "SO_REUSERPS" in res.stdout:
        return True
    sections = [line for line in res.stdout.splitlines()
                if line and not line[0].isspace() and ":" not in line
                and "@" not in line]
    return any(s.strip() != "THE REST" for s in sections)


# What a maintainer can read: few patches, a short cover letter, short
# messages, nothing outside the kernel tree, and the option reachable only
# once everything it promises works.
MAX_PATCHES = 15
MAX_COVER_LINES = 80
MAX_MESSAGE_LINES = 40
NOT_KERNEL = ("harness/", "preload/", "docs/benchmarking", "build/",
              "README.md", "patches/", "Cargo.toml")


def check_shape():
    _, _, cover, commits = parse_series()
    bad = []
    if len(commits) > MAX_PATCHES:
        bad.append(f"{len(commits)} patches, more than {MAX_PATCHES}")
    if len(cover.splitlines()) > MAX_COVER_LINES:
        bad.append(f"cover letter of {len(cover.splitlines())} lines, "
                   f"more than {MAX_COVER_LINES}")
    for c in commits:
        n = len(c.body.splitlines())
        if n > MAX_MESSAGE_LINES:
            bad.append(f"'{c.subject}': message of {n} lines, more than "
                       f"{MAX_MESSAGE_LINES}")
    for where, text in [("cover letter", cover)] + \
            [(f"'{c.subject}'", c.body) for c in commits]:
        for ref in NOT_KERNEL:
            if ref in text:
                bad.append(f"{where} names '{ref}', outside the kernel tree")
    # The patch that makes sk_setsockopt() reach SO_REUSERPS comes after
    # every other patch to the kernel proper (net/, include/, rust/).
    revs = git("rev-list", "--reverse", "base..series").split()
    touching, enable = [], None
    for i, rev in enumerate(revs):
        names = git("diff", "--name-only", f"{rev}^", rev).split()
        if any(n.split("/")[0] in ("net", "include", "rust") for n in names):
            touching.append(i)
        diff = git("diff", f"{rev}^", rev, "--", "net/core/sock.c", raw=True)
        if re.search(r"^\+.*\bSO_REUSERPS\b", diff, re.M):
            enable = i
    if enable is None:
        bad.append("no patch makes sk_setsockopt() handle SO_REUSERPS")
    elif touching and enable != touching[-1]:
        bad.append(f"patch {enable + 1} enables SO_REUSERPS before patch "
                   f"{touching[-1] + 1} changes the kernel")
    if bad:
        die("series shape:\n  " + "\n  ".join(bad))
    big = max(int(x) for x in [0] + [
        re.sub(r"\D.*", "", git("diff", "--shortstat", f"{r}^", r)
               .split(", ")[1]) for r in revs])  # "N insertions(+)"
    print(f"series: {len(commits)} patches, cover letter "
          f"{len(cover.splitlines())} lines, messages at most "
          f"{max(len(c.body.splitlines()) for c in commits)} lines, "
          f"largest patch +{big}; SO_REUSERPS enabled in patch "
          f"{enable + 1}, after every other kernel change")


def cmd_verify(_args):
    cmd_format(None, posting=False)
    msgs = os.path.join(OUTDIR, "messages")
    patches = sorted(p for p in os.listdir(msgs)
                     if p.endswith(".eml") and not p.startswith("0000-"))
    # What a maintainer does: b4 am the thread, git am onto the base.
    amdir = os.path.join(BUILD, "b4-am")
    shutil.rmtree(amdir, ignore_errors=True)
    b4("am", "-m", os.path.join(OUTDIR, "series.mbox"), "-o", amdir,
       cover_msgid(msgs))
    mbx = [f for f in os.listdir(amdir) if f.endswith(".mbx")]
    if len(mbx) != 1:
        die(f"b4 am wrote {mbx} to {amdir}, not one .mbx")
    check = os.path.join(BUILD, "am-check")
    git("worktree", "prune")
    if os.path.isdir(check):
        git("worktree", "remove", "--force", check, check=False)
        shutil.rmtree(check, ignore_errors=True)
    git("worktree", "add", "-q", "--detach", check, "base")
    res = subprocess.run(["git", "am", "-q", "--whitespace=error-all",
                          os.path.join(amdir, mbx[0])],
                         cwd=check, capture_output=True, text=True)
    if res.returncode:
        die(f"git am of b4's {mbx[0]} onto base failed:\n"
            f"{res.stderr.strip()}")
    got = git("rev-parse", "HEAD^{tree}", cwd=check)
    applied = git("rev-list", "--count", "base..HEAD", cwd=check)
    want = git("rev-parse", "series^{tree}")
    git("worktree", "remove", "--force", check)
    if got != want:
        die(f"b4 am + git am result {got[:12]} differs from series tree "
            f"{want[:12]}")
    print(f"series: b4 am of series.mbox, git am of its {applied} "
          "patch(es) onto base gives the series tree exactly")

    check_shape()
    # No placeholder is posted: without the poster's identity, `make
    # series` refuses (the repository's own git config aside).
    env = {k: v for k, v in os.environ.items() if k != "REUSERPS_AUTHOR"}
    env.update(GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1")
    if not git("config", "--local", "user.email", cwd=REPO, check=False):
        res = subprocess.run([sys.executable, os.path.abspath(__file__),
                              "format"], env=env, capture_output=True,
                             text=True, cwd=REPO)
        if res.returncode == 0 or "who posts?" not in res.stderr:
            die("make series would post without the poster's identity")
        print("series: make series refuses to post without the poster's "
              "identity")

    # Rust keeps rustfmt's form with the kernel's own configuration
    # (`make rustfmtcheck` walks the whole tree; this checks ours).
    added = git("diff", "--name-only", "--diff-filter=AM", "base", "series")
    rs = [f for f in added.splitlines() if f.endswith(".rs")]
    if rs:
        res = subprocess.run(
            [os.environ.get("RUSTFMT", "/usr/bin/rustfmt"), "--check",
             "--edition", "2021", "--config-path", ".rustfmt.toml", *rs],
            cwd=TREE, capture_output=True, text=True)
        if res.returncode:
            die("rustfmt --check (kernel .rustfmt.toml) wants changes:\n"
                + res.stdout[:3000] + res.stderr[:1000])
        print(f"series: rustfmt --check clean on {len(rs)} Rust file(s)")

    # Documentation parses as reStructuredText (docutils, from the venv;
    # Sphinx-only roles such as :doc: are accepted without checking).
    new_files = git("diff", "--name-only", "--diff-filter=A", "base",
                    "series")
    rst = [f for f in new_files.splitlines()
           if f.endswith(".rst") and f.startswith("Documentation/")]
    if rst:
        check_rst = (
            "import docutils.core, io, sys\n"
            "from docutils.parsers.rst import roles\n"
            "for r in ('doc', 'ref'):\n"
            "    roles.register_local_role(r, lambda *a, **k: ([], []))\n"
            "bad = 0\n"
            "for f in sys.argv[1:]:\n"
            "    err = io.StringIO()\n"
            "    docutils.core.publish_doctree(open(f).read(), "
            "source_path=f, settings_overrides={'warning_stream': err, "
            "'report_level': 2, 'halt_level': 5})\n"
            "    if err.getvalue():\n"
            "        print(err.getvalue()); bad = 1\n"
            "sys.exit(bad)\n")
        res = subprocess.run(
            [os.path.join(BUILD, "venv", "bin", "python"), "-c", check_rst,
             *rst], cwd=TREE, capture_output=True, text=True)
        if res.returncode:
            die("reStructuredText problems:\n" + res.stdout + res.stderr)
        print(f"series: docutils parses {len(rst)} document(s) cleanly")

    spell = codespell_file()
    if not spell:
        die("codespell dictionary not found (apt-get install codespell)")
    failed = 0
    for p in patches:
        path = os.path.join(msgs, p)
        res = subprocess.run(
            ["perl", "scripts/checkpatch.pl", "--strict", "--codespell",
             f"--codespellfile={spell}", "--color=never", "--show-types", path],
            cwd=TREE, capture_output=True, text=True)
        out = res.stdout
        problems = re.findall(r"^(?:WARNING|ERROR|CHECK):(\w+):", out, re.M)
        with open(path, encoding="utf-8") as f:
            added = re.findall(r"^diff --git a/\S+ b/(\S+)\nnew file mode",
                               f.read(), re.M)
        # The MAINTAINERS entry comes once, in the first patch: a later
        # patch adding files that entry already covers is fine.
        if problems == ["FILE_PATH_CHANGES"] and added and \
                all(maintained(f) for f in added):
            problems = []
            print(f"checkpatch: {p}: its new files are covered by the "
                  "MAINTAINERS entry (FILE_PATH_CHANGES accepted)")
        clean = not problems and re.search(r"^total: ", out, re.M)
        longs = long_lines(path)
        if clean and not longs:
            print(f"checkpatch: {p}: clean")
            continue
        failed += 1
        print(f"checkpatch: {p}: PROBLEMS")
        print(out)
        for line in longs:
            print(f"  over 80 columns: {line}")
    if failed:
        die(f"{failed} patch(es) fail checkpatch --strict")


def scratch_dir(patch):
    return os.path.join(BUILD, "edit", patch.removesuffix(".patch"))


def cmd_edit(args):
    """Lay out a scratch tree at the state the patch applies to, patched."""
    cmd_assemble(None)
    _, _, _, commits = parse_series()
    owner = next((c for c in commits if args.patch in c.patches), None)
    if not owner:
        die(f"{args.patch} is in no commit")
    idx = commits.index(owner)
    # The owning commit's parent plus its files and earlier patches.
    rev = f"series~{len(commits) - idx}"
    work = scratch_dir(args.patch)
    git("worktree", "prune")
    if os.path.isdir(work):
        die(f"{work} exists: run refresh or remove it first")
    git("worktree", "add", "-q", "--detach", work, rev)
    for f in owner.files:
        dst = os.path.join(work, f)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy2(os.path.join(REPO, f), dst)
    for p in owner.patches:
        if p == args.patch:
            break
        git("apply", os.path.join(REPO, "patches", p), cwd=work)
    git("add", "-A", ".", cwd=work)
    git("commit", "-q", "--allow-empty", "-m", "pre-state", cwd=work,
        env=author_env("Edit <edit@localhost>", "1764115200 +0000"))
    git("apply", os.path.join(REPO, "patches", args.patch), cwd=work)
    print(f"series: edit {work}, then: harness/series.py refresh {args.patch}")


def cmd_refresh(args):
    work = scratch_dir(args.patch)
    if not os.path.isdir(work):
        die(f"no scratch tree {work}: run edit first")
    git("add", "-A", "-N", ".", cwd=work)
    # Raw: a patch may end in a context line that is a lone space.
    diff = git("diff", "--no-color", "--no-ext-diff", "HEAD", cwd=work,
               raw=True)
    with open(os.path.join(REPO, "patches", args.patch), "w",
              encoding="utf-8") as f:
        f.write(diff)
    git("worktree", "remove", "--force", work)
    print(f"series: wrote patches/{args.patch}")


def git_bytes(*args, inp=None):
    """Runs git in TREE on bytes: file contents as they are."""
    res = subprocess.run(["git", *args], cwd=TREE, input=inp,
                         capture_output=True)
    if res.returncode:
        die(f"git {' '.join(args)} failed:\n{res.stderr.decode().strip()}")
    return res.stdout


def patch_paths(patch):
    """The paths a patch of patches/ changes, from its diff headers."""
    with open(os.path.join(REPO, "patches", patch), encoding="utf-8") as f:
        heads = re.findall(r"^diff --git a/(\S+) b/(\S+)$", f.read(), re.M)
    return {p for head in heads for p in head}


def applied(tree, text, ienv):
    """The tree `git apply` as assemble runs it makes of tree and a
    patch's text, or None if it does not apply."""
    git("read-tree", tree, env=ienv)
    res = subprocess.run(
        ["git", "apply", "--cached", "--whitespace=error-all"], cwd=TREE,
        env={**os.environ, **ienv}, input=text, capture_output=True,
        text=True)
    return None if res.returncode else git("write-tree", env=ienv)


def cmd_absorb(args):
    """The inverse of assemble: commit i of base..REV becomes entry i of
    `series`.  The files it adds go to the repository as they are at that
    commit (assemble copies them whole there, so no later commit may change
    them but through a patch), its changes to other files become its
    patches, each the diff of the paths its diff headers name; a path two
    patches of one commit share keeps the earlier patches' change and
    gives the rest to the last.  A patch that still makes the very same
    tree is kept as it is (it may apply with an offset); any other is
    rewritten as `git diff`, like refresh.  Everything is checked first:
    the repository is written only if nothing is wrong."""
    if git("tag", "-l", "base", check=False) != "base":
        die(f"no tag base in {TREE}: nothing to absorb")
    rev = git("rev-parse", "--verify", "-q", f"{args.rev}^{{commit}}",
              check=False)
    if not rev or subprocess.run(["git", "merge-base", "--is-ancestor",
                                  "base", rev], cwd=TREE).returncode:
        die(f"{args.rev} is not a commit on top of base in {TREE}")
    placeholder, _, _, commits = parse_series(new_ok=True)
    chain = [line.split() for line in git(
        "rev-list", "--reverse", "--parents", f"base..{rev}").splitlines()]
    if len(chain) != len(commits):
        die(f"base..{args.rev} has {len(chain)} commit(s), `series` "
            f"{len(commits)} entries: squash or split commits, or edit "
            "`series`, so that they match one to one")
    if any(len(c) != 2 for c in chain):
        die(f"base..{args.rev} has merges: absorb takes a linear history")
    in_base = set(git_bytes("ls-tree", "-r", "-z", "--name-only", "base")
                  .decode().split("\0"))
    index = os.path.join(BUILD, "absorb.index")
    for f in (index, index + ".check"):
        if os.path.exists(f):
            os.remove(f)
    ienv = {"GIT_INDEX_FILE": index}
    cenv = {"GIT_INDEX_FILE": index + ".check"}
    files, patches, added_by, same = {}, {}, {}, 0

    def put(ref, path, ident):
        """Path as at ref into the index, the poster back to placeholder."""
        entry = git_bytes("ls-tree", "-z", ref, "--", path).decode()
        if not entry:
            git("update-index", "--force-remove", "--", path, env=ienv)
            return
        mode, _, blob = entry.split("\t")[0].split()
        data = git_bytes("cat-file", "blob", blob)
        if ident != placeholder and ident.encode() in data:
            blob = git_bytes("hash-object", "-w", "--stdin", inp=data.replace(
                ident.encode(), placeholder.encode())).decode().strip()
        git("update-index", "--add", "--cacheinfo", f"{mode},{blob},{path}",
            env=ienv)

    for n, (c, (cur, parent)) in enumerate(zip(commits, chain), 1):
        subject, ident, msg = git("log", "-1", "--format=%s%n%an <%ae>%n%B",
                                  cur).split("\n", 2)
        where = f"commit {n} '{c.subject}'"
        if subject != c.subject:
            print(f"series: warning: commit {n} is '{subject}', `series` "
                  f"says '{c.subject}' (matched by position)")
        elif msg.strip() != f"{c.subject}\n\n{c.body}\n\n" \
                f"Signed-off-by: {ident}":
            print(f"series: warning: {where}: its message differs from "
                  "`series`, which absorb does not change")
        owned = {p: patch_paths(p) for p in c.patches}
        status = git_bytes("diff-tree", "-r", "-z", "--no-renames",
                           "--name-status", parent, cur).decode().split("\0")
        changed, unlisted = set(), []
        for st, path in zip(status[0::2], status[1::2]):
            if any(path in paths for paths in owned.values()):
                changed.add(path)
            elif path in in_base:
                die(f"{where} changes {path}, which none of its patches "
                    f"({' '.join(c.patches) or 'none'}) touches: add it to "
                    "one, or a new patch to the entry's patches: line")
            elif path in added_by:
                die(f"{where} changes {path}, which commit {added_by[path]} "
                    "adds: assemble copies a new file whole at the commit "
                    "that lists it, so fold the change into that commit")
            elif path not in c.files:
                unlisted.append(path)
            else:
                added_by[path] = n
                entry = git_bytes("ls-tree", "-z", cur, "--",
                                  path).decode().split("\t")[0].split()
                if entry[0] not in ("100644", "100755"):
                    die(f"{where}: {path} is not a regular file")
                files[path] = (entry[0], git_bytes("cat-file", "blob",
                                                   entry[2]))
        if unlisted:
            die(f"{where} adds files its files: line does not list: "
                + " ".join(sorted(unlisted)))
        gone = [f for f in c.files if added_by.get(f) != n]
        if gone:
            die(f"{where} no longer adds " + " ".join(gone)
                + ": take them out of its files: line")
        git("read-tree", parent, env=ienv)
        for path in changed:
            put(parent, path, ident)
        for i, p in enumerate(c.patches):
            before = git("write-tree", env=ienv)
            for path in sorted(owned[p] & changed):
                if any(path in owned[q] for q in c.patches[i + 1:]):
                    # Shared with a later patch, which takes the rest.
                    res = subprocess.run(
                        ["git", "apply", "--cached", f"--include={path}",
                         os.path.join(REPO, "patches", p)], cwd=TREE,
                        env={**os.environ, **ienv}, capture_output=True,
                        text=True)
                    if res.returncode:
                        die(f"{where}: patches/{p}'s change to {path} no "
                            "longer applies; a later patch of the commit "
                            f"shares the path:\n{res.stderr.strip()}")
                else:
                    put(cur, path, ident)
            after = git("write-tree", env=ienv)
            diff = git("diff", "--no-color", "--no-ext-diff", before, after,
                       "--", *sorted(owned[p]), raw=True)
            if not diff:
                die(f"{where} no longer changes the files of patches/{p}: "
                    "take it out of `series` (and patches/)")
            with open(os.path.join(REPO, "patches", p),
                      encoding="utf-8") as f:
                if applied(before, f.read(), cenv) == after:
                    same += 1
                    continue
            if applied(before, diff, cenv) != after:
                die(f"{where}: its diff as patches/{p} would not apply in "
                    "assemble (whitespace errors?)")
            patches[p] = diff
    for f in (index, index + ".check"):
        if os.path.exists(f):
            os.remove(f)

    wrote = []
    for path, (mode, data) in files.items():
        dst = os.path.join(REPO, path)
        if os.path.isfile(dst) and file_mode(dst) == mode:
            with open(dst, "rb") as f:
                if f.read() == data:
                    same += 1
                    continue
        wrote.append((dst, data, mode))
    for p, diff in patches.items():
        wrote.append((os.path.join(REPO, "patches", p), diff.encode(), None))
    for dst, data, mode in wrote:
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        with open(dst, "wb") as f:
            f.write(data)
        if mode:
            os.chmod(dst, 0o755 if mode == "100755" else 0o644)
        print(f"series: wrote {os.path.relpath(dst, REPO)}")
    print(f"series: absorbed {len(commits)} commit(s) of {args.rev}: "
          f"{len(wrote)} file(s) and patch(es) written, {same} unchanged")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("base", "assemble", "format", "verify"):
        sub.add_parser(name)
    for name in ("edit", "refresh"):
        sp = sub.add_parser(name)
        sp.add_argument("patch", help="file name in patches/")
    sub.add_parser("absorb").add_argument(
        "rev", nargs="?", default="series",
        help="the last commit to absorb (default: branch series)")
    args = ap.parse_args()
    {"base": cmd_base, "assemble": cmd_assemble, "format": cmd_format,
     "verify": cmd_verify, "edit": cmd_edit, "refresh": cmd_refresh,
     "absorb": cmd_absorb}[
        args.cmd](args)


if __name__ == "__main__":
    main()
