#!/usr/bin/env bash
# The autoupdater: keeps a pm2 deployment of Dojo on the newest released version.
#
#   pm2 start run.sh --interpreter bash --name dojo-autoupdater -- \
#     --netuid 98 --wallet.name coldkey --wallet.hotkey hotkey --logging.debug \
#     --subtensor.network test --neuron.type validator --scoring_method dojo --axon.port 9603
#
# The arguments after `--` are the neuron's flags. On first start it starts the neuron under
# pm2 with them (`dojo-<neuron.type>` running `main_<neuron.type>.py`) unless that process
# already runs. Then, every UPDATE_INTERVAL seconds, it fetches AUTOUPDATE_REMOTE/BRANCH and
# its tags, and looks for a release newer than the working tree's version (`__version__` in
# template/__init__.py; dotted integers, strictly newer).
#
# A release is an annotated tag `v<version>` (`git tag -s v1.2.0`) on the branch, signed with
# an SSH key listed in the allowed signers pinned on this machine (AUTOUPDATE_ALLOWED_SIGNERS,
# by default .git/dojo-allowed-signers, written by `bash run.sh --pin-signers` at install from
# the repository's allowed_signers). A fast-forward cannot change the pinned copy, so a
# release cannot bring the keys that verify it. Before anything of the release is used it
# must pass `git verify-tag` against the pinned signers (SSH signatures only), its tag object
# must carry its own name (a signed tag cannot be replayed under a newer name) and its
# commit must say that version; anything else is refused and logged, with nothing of the
# new commit checked out, installed or run. AUTOUPDATE_VERIFY=off follows the branch's
# newest version instead, unverified, with a warning at start and at every update.
#
# A verified release (or, unverified, the branch's tip) is taken:
#   - refused, with nothing changed, when tracked files have local changes (modified or
#     staged; untracked files such as env/, .venv/, logs, .env and ecosystem.local.js don't
#     count) or when the local branch is not an ancestor of the release (diverged history);
#   - otherwise `git merge --ff-only`; `pip install -r requirements.txt -e .` only when
#     requirements.txt or setup.py differ between the two commits;
#   - the processes in AUTOUPDATE_PROCESSES are restarted and must pass the health check;
#   - when they don't, it rolls back with `git reset --hard <previous commit>` (safe: the
#     tree was clean), reinstalls the previous requirements if they had changed, restarts
#     and checks again, and records the bad version in .git/dojo-autoupdate-skip so that it
#     is not tried again; a newer version clears the record. A restart pm2 refuses during
#     the rollback (it is bringing the process back itself after its restart_delay: "Process
#     with pid N already exists") is logged and left to the health check;
#   - a failed pip install is undone the same way (before any restart) and not recorded:
#     the next check tries again, as the cause may be the network.
# If run.sh itself changed in an update, the autoupdater re-executes the new run.sh.
# Every step is one line on stdout: `2026-12-02T14:00:00Z run.sh: ...` (UTC).
#
# Settings (environment variables):
#   UPDATE_INTERVAL       seconds between checks (1200)
#   AUTOUPDATE_REMOTE     git remote to fetch (origin)
#   AUTOUPDATE_BRANCH     branch to follow (the checked-out branch)
#   AUTOUPDATE_VERIFY     "tag" (default): only signed release tags; "off": the branch's newest
#                         version, unverified (whoever can push to the branch runs code here)
#   AUTOUPDATE_ALLOWED_SIGNERS  the pinned allowed-signers file (.git/dojo-allowed-signers)
#   AUTOUPDATE_PROCESSES  pm2 names to restart, space or comma separated (dojo-<neuron.type>,
#                         dojo-validator by default; e.g. "dojo-validator dojo-synthetic")
#   AUTOUPDATE_PYTHON     python for pip and the pm2 health check (.venv/bin/python, else
#                         env/bin/python, else python3)
#   RESTART_CMD           shell command (bash -c, in the repository) that restarts the
#                         processes; it sees AUTOUPDATE_PROCESSES and AUTOUPDATE_VERSION.
#                         Default: `pm2 restart <name> --update-env` for each name
#   HEALTH_CMD            shell command that exits 0 when the processes are healthy (it sees
#                         the same two variables), retried every HEALTH_INTERVAL seconds until
#                         HEALTH_TIMEOUT. Default: each process is `online` in `pm2 jlist`
#                         and has been up HEALTH_STABLE seconds
#   HEALTH_TIMEOUT        seconds the health check may take to pass (60; 0 = one attempt)
#   HEALTH_INTERVAL       seconds between health attempts (5)
#   HEALTH_STABLE         seconds a pm2 process must have been online (10)
#   AUTOUPDATE_START_CMD  shell command run once at start instead of the default pm2 start
#                         (its "$@" are the neuron's flags). With a custom RESTART_CMD and no
#                         AUTOUPDATE_START_CMD nothing is started (the processes are assumed
#                         to be managed elsewhere)
#   AUTOUPDATE_ONCE=1     (or `--once` as first argument) one check, then exit; nothing is
#                         started. Exit status 0: up to date, nothing newer, or updated;
#                         1: fetch failed, update refused, failed or rolled back; 2: bad setting
#
#   bash run.sh --pin-signers [FILE]   pins FILE (default: allowed_signers as committed at
#                         HEAD) as the allowed signers, after printing each key's fingerprint
#                         to compare with the ones the project publishes; then exits.
set -euo pipefail

log() {
  local message="$*"
  message=${message//$'\r'/}
  printf '%s run.sh: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${message//$'\n'/ | }"
}

# Runs a command with each line of its output logged under a label; returns its status.
run_logged() {
  local label=$1 line
  shift
  # `&& return 0` keeps a failure from tripping errexit here, so the caller gets the status.
  "$@" 2>&1 | while IFS= read -r line || [ -n "$line" ]; do log "$label: $line"; done && return 0
  return "${PIPESTATUS[0]}"
}

die() {
  log "error: $*"
  exit 2
}

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

# The __version__ in a template/__init__.py read on stdin (empty when there is none).
parse_version() {
  sed -n "s/^__version__[[:space:]]*=[[:space:]]*[\"']\([^\"']*\)[\"'].*/\1/p" | head -n 1
}

# True when dotted-integer version $1 is strictly greater than $2 (1.10.0 > 1.9.3; 1.2 = 1.2.0).
version_gt() {
  local -a a b
  local i n x y
  IFS=. read -r -a a <<<"$1"
  IFS=. read -r -a b <<<"$2"
  n=$((${#a[@]} > ${#b[@]} ? ${#a[@]} : ${#b[@]}))
  for ((i = 0; i < n; i++)); do
    x=$((10#${a[i]:-0}))
    y=$((10#${b[i]:-0}))
    ((x > y)) && return 0
    ((x < y)) && return 1
  done
  return 1
}

is_version() { [[ $1 =~ ^[0-9]+(\.[0-9]+)*$ ]]; }

# Reads `pm2 jlist` on stdin; exits 0 when every named process is online and has been up
# for at least argv[1] seconds, else prints what is wrong and exits 1.
PM2_HEALTH_PY=$(
  cat <<'EOF'
import json, re, sys, time
stable, names = float(sys.argv[1]), sys.argv[2:]
text = sys.stdin.read()
listed = None
for start in [0] + [m.start() for m in re.finditer(r"(?m)^\[", text)]:  # after any pm2 warnings
    try:
        listed = json.loads(text[start:])
        break
    except ValueError:
        pass
if not isinstance(listed, list):
    print("pm2 jlist did not print a JSON list: " + " ".join(text.split())[:200])
    sys.exit(1)
processes = {p.get("name"): p.get("pm2_env", {}) for p in listed}
now = time.time() * 1000
problems = []
for name in names:
    env = processes.get(name)
    if env is None:
        problems.append(f"{name}: not known to pm2")
    elif env.get("status") != "online":
        problems.append(f"{name}: {env.get('status')}")
    else:
        up = (now - float(env.get("pm_uptime") or now)) / 1000
        if up < stable:
            problems.append(f"{name}: online for {int(up)}s, not yet {stable:g}s")
print("; ".join(problems) or "all online")
sys.exit(1 if problems else 0)
EOF
)

restart_processes() {
  local version=$1 name status=0
  if [ -n "${RESTART_CMD:-}" ]; then
    AUTOUPDATE_PROCESSES="${processes[*]}" AUTOUPDATE_VERSION=$version run_logged restart bash -c "$RESTART_CMD" || return 1
    return 0
  fi
  for name in "${processes[@]}"; do
    run_logged pm2 pm2 restart "$name" --update-env || status=1
  done
  return "$status"
}

health_once() {
  local version=$1
  if [ -n "${HEALTH_CMD:-}" ]; then
    AUTOUPDATE_PROCESSES="${processes[*]}" AUTOUPDATE_VERSION=$version run_logged health bash -c "$HEALTH_CMD"
  else
    local jlist
    jlist=$(pm2 jlist 2>/dev/null) || { log "health: pm2 jlist failed"; return 1; }
    run_logged health "$python" -c "$PM2_HEALTH_PY" "$HEALTH_STABLE" "${processes[@]}" <<<"$jlist"
  fi
}

# The health check, retried until HEALTH_TIMEOUT seconds have passed.
healthy() {
  local version=$1 attempt=1 started=$SECONDS
  while true; do
    if health_once "$version"; then
      log "health check passed for $version (attempt $attempt)"
      return 0
    fi
    if ((SECONDS - started >= HEALTH_TIMEOUT)); then
      log "health check failed for $version after $attempt attempt(s) in $((SECONDS - started))s"
      return 1
    fi
    attempt=$((attempt + 1))
    sleep "$HEALTH_INTERVAL"
  done
}

requirements_changed() {
  ! git diff --quiet "$1" "$2" -- requirements.txt setup.py
}

install_requirements() {
  log "installing requirements: $python -m pip install -r requirements.txt -e ."
  run_logged pip "$python" -m pip install -r requirements.txt -e .
}

# The fetched branch and tags are kept under their own refs, apart from the operator's: a
# fetch never clobbers a local tag, and a tag deleted upstream is gone here too.
REF_NS=refs/dojo-autoupdate

# git whose signature checks accept SSH signatures by the pinned signers only: a PGP or
# X.509 signature cannot pass through a keyring this machine trusts for something else.
verify_git() {
  git -c gpg.format=ssh -c gpg.ssh.program=ssh-keygen -c "gpg.ssh.allowedSignersFile=$signers" \
    -c gpg.minTrustLevel=fully -c gpg.program=false -c gpg.openpgp.program=false \
    -c gpg.x509.program=false "$@"
}

# The fetched tags named v<version> on the fetched branch with a version newer than $1:
# prints the newest as "<version> <tag name>", nothing when there is none.
newest_release() {
  local running=$1 tip=$2 name version commit best="" best_version=""
  while IFS= read -r name; do
    [[ $name == v* ]] || continue
    version=${name#v}
    is_version "$version" && version_gt "$version" "$running" || continue
    [ -z "$best_version" ] || version_gt "$version" "$best_version" || continue
    commit=$(git rev-parse --verify --quiet "$REF_NS/tags/$name^{commit}") || continue
    git merge-base --is-ancestor "$commit" "$tip" 2>/dev/null || continue
    best_version=$version
    best="$version $name"
  done < <(git for-each-ref --format='%(refname:lstrip=3)' "$REF_NS/tags/")
  [ -z "$best" ] || printf '%s\n' "$best"
}

# Checks that tag $1 is the signed release of version $2 and sets release_commit. Nothing of
# the tagged commit is checked out or run here: git reads objects and ssh-keygen checks the
# signature. Each refusal is logged with its reason.
verify_release() {
  local name=$1 version=$2 tag header tagged_type tagged_name commit tree_version
  if [ ! -s "$signers" ]; then
    log "refusing $name: no allowed signers are pinned at $signers; pin them with \`bash run.sh --pin-signers\` after checking their fingerprints (README, The autoupdater), or set AUTOUPDATE_VERIFY=off to follow unsigned releases"
    return 1
  fi
  tag=$(git rev-parse --verify --quiet "$REF_NS/tags/$name") || {
    log "refusing $name: the tag is gone"
    return 1
  }
  if [ "$(git cat-file -t "$tag")" != tag ]; then
    log "refusing $name: it is a lightweight tag, which carries no signature; a release is a signed annotated tag (git tag -s $name)"
    return 1
  fi
  header=$(git cat-file tag "$tag" | sed '/^$/q')
  tagged_type=$(sed -n 's/^type //p' <<<"$header")
  tagged_name=$(sed -n 's/^tag //p' <<<"$header")
  if [ "$tagged_name" != "$name" ]; then
    log "refusing $name: the tag object was made as '$tagged_name', not $name (a signed tag published under another name)"
    return 1
  fi
  if [ "$tagged_type" != commit ]; then
    log "refusing $name: it tags a $tagged_type, not a commit"
    return 1
  fi
  if ! run_logged verify verify_git verify-tag "$tag"; then
    log "refusing $name: its signature is missing or not made by a key in the pinned allowed signers ($signers)"
    return 1
  fi
  commit=$(git rev-parse --verify "$tag^{commit}")
  tree_version=$(git show "$commit:template/__init__.py" 2>/dev/null | parse_version || true)
  if [ "$tree_version" != "$version" ]; then
    log "refusing $name: its commit ${commit:0:12} says version '$tree_version', not $version"
    return 1
  fi
  release_commit=$commit
}

# The key of an allowed-signers line ("principals [options] keytype base64 [comment]").
SIGNER_KEY='(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp(256|384|521)|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com)[[:space:]]+[A-Za-z0-9+/]+=*'

# `run.sh --pin-signers [FILE]`: pins FILE (or allowed_signers as committed at HEAD) as the
# allowed signers, after printing each key's principals and fingerprint.
pin_signers() {
  local source=${1:-} text line number=0 count=0 key fingerprint bits tmp
  if [ -n "$source" ]; then
    text=$(cat -- "$source") || die "cannot read $source"
  else
    source="allowed_signers at HEAD (${head_commit:0:12})"
    text=$(git show HEAD:allowed_signers 2>/dev/null) || die "HEAD has no allowed_signers file; give the file to pin: bash run.sh --pin-signers FILE"
  fi
  command -v ssh-keygen >/dev/null || die "ssh-keygen (OpenSSH) is needed to read and verify signatures"
  while IFS= read -r line || [ -n "$line" ]; do
    number=$((number + 1))
    [[ $line =~ ^[[:space:]]*(#|$) ]] && continue
    [[ $line =~ $SIGNER_KEY ]] || die "$source, line $number is not an allowed-signers entry (principals [options] keytype key): $line"
    key=${BASH_REMATCH[0]}
    fingerprint=$(ssh-keygen -l -f /dev/stdin <<<"$key" 2>&1) || die "$source, line $number: ssh-keygen cannot read its key: $fingerprint"
    read -r bits fingerprint _ <<<"$fingerprint"
    log "signer ${line%%[[:space:]]*}: $fingerprint (${BASH_REMATCH[1]}, $bits bits)"
    count=$((count + 1))
  done <<<"$text"
  [ "$count" -gt 0 ] || die "$source lists no key; nothing pinned"
  tmp=$(mktemp "$signers.XXXXXX") || die "cannot write next to $signers"
  printf '%s\n' "$text" >"$tmp"
  chmod 0644 "$tmp"
  mv -f "$tmp" "$signers"
  log "pinned $count allowed signer key(s) from $source at $signers; compare the fingerprints above with the ones the project publishes before trusting them"
}

# Back to the previous commit after a failed update, and the previous version restarted.
roll_back() {
  local previous=$1 previous_version=$2 target=$3
  log "rolling back to $previous_version (${previous:0:12}) with git reset --hard"
  if ! run_logged git git reset --quiet --hard "$previous"; then
    log "rollback failed: git reset --hard $previous did not succeed; the deployment needs an operator"
    return 1
  fi
  if requirements_changed "$previous" "$target"; then
    install_requirements || log "reinstalling the previous requirements failed; restarting anyway"
  fi
  log "restarting ${processes[*]} at $previous_version"
  if ! restart_processes "$previous_version"; then
    # pm2 refuses a restart while it is bringing the crashed process back itself after its
    # restart_delay ("Process with pid N already exists"), and that process runs the files
    # now on disk: the previous version. Whether it came back is the health check's to say.
    log "the restart at $previous_version reported a failure; pm2 may be restarting the processes itself; checking their health"
  fi
  if healthy "$previous_version"; then
    log "rolled back to $previous_version (${previous:0:12}); healthy"
  else
    log "rolled back to $previous_version (${previous:0:12}) but it is still unhealthy; the deployment needs an operator"
  fi
}

# One check: 0 when up to date, nothing newer, skipped or updated (3 when the update
# changed run.sh); 1 otherwise.
check_for_update() {
  local head tip target running_version new_version tip_version release tag dirty skipped_version
  log "fetching $remote $branch"
  if ! run_logged git git fetch --quiet --no-tags --prune "$remote" \
    "+refs/heads/$branch:$REF_NS/branch" "+refs/tags/*:$REF_NS/tags/*"; then
    log "fetch of $remote $branch failed; will retry"
    return 1
  fi
  tip=$(git rev-parse --verify --quiet "$REF_NS/branch^{commit}") || {
    log "fetch of $remote $branch gave no commit; will retry"
    return 1
  }
  head=$(git rev-parse HEAD)
  running_version=$(parse_version <template/__init__.py 2>/dev/null || true)
  if ! is_version "$running_version"; then
    log "cannot read the running version from template/__init__.py (got '$running_version'); not updating"
    return 1
  fi
  if [ "$verify" = off ]; then
    if [ "$head" = "$tip" ]; then
      log "up to date with $remote/$branch at ${head:0:12}"
      return 0
    fi
    target=$tip
    new_version=$(git show "$target:template/__init__.py" 2>/dev/null | parse_version || true)
    if ! is_version "$new_version"; then
      log "cannot read the version at $remote/$branch ${target:0:12} (got '$new_version'); not updating"
      return 1
    fi
    if ! version_gt "$new_version" "$running_version"; then
      log "$remote/$branch moved to ${target:0:12} but its version $new_version is not newer than the running $running_version; nothing to do"
      return 0
    fi
  else
    release=$(newest_release "$running_version" "$tip")
    if [ -z "$release" ]; then
      tip_version=$(git show "$tip:template/__init__.py" 2>/dev/null | parse_version || true)
      if is_version "$tip_version" && version_gt "$tip_version" "$running_version"; then
        log "refusing to update: $remote/$branch (${tip:0:12}) says version $tip_version but no release tag v$tip_version is on it; only signed release tags are followed"
        return 1
      fi
      if [ "$head" = "$tip" ]; then
        log "up to date with $remote/$branch at ${head:0:12}"
      else
        log "no release newer than the running $running_version on $remote/$branch (${tip:0:12}); nothing to do"
      fi
      return 0
    fi
    read -r new_version tag <<<"$release"
  fi
  if [ -f "$skip_file" ]; then
    read -r skipped_version _ <"$skip_file" || true
    if [ "${skipped_version:-}" = "$new_version" ]; then
      log "version $new_version failed its health check before and was rolled back; skipping it until a newer version appears (forget it: rm $skip_file)"
      return 0
    fi
  fi
  if [ "$verify" = off ]; then
    log "WARNING: taking version $new_version (${target:0:12}) unverified: AUTOUPDATE_VERIFY=off"
  else
    release_commit=""
    verify_release "$tag" "$new_version" || return 1
    target=$release_commit
    log "release $tag (${target:0:12}) is signed by an allowed signer"
  fi
  log "version $new_version (${target:0:12}) is newer than the running $running_version (${head:0:12})"
  git update-index -q --refresh >/dev/null 2>&1 || true
  if ! git diff --quiet || ! git diff --cached --quiet; then
    dirty=$(git diff --name-only HEAD | paste -sd, -)
    local hint=""
    [[ ,$dirty, == *,ecosystem.config.js,* ]] &&
      hint=" (the settings of ecosystem.config.js belong in ecosystem.local.js, which git does not track: copy ecosystem.local.example.js, then git checkout ecosystem.config.js)"
    log "refusing to update to $new_version: tracked files have local changes ($dirty); commit, stash or discard them (git status) and the next check updates$hint"
    return 1
  fi
  if ! git merge-base --is-ancestor "$head" "$target"; then
    log "refusing to update to $new_version: history diverged (local ${head:0:12} is not an ancestor of ${tag:-$remote/$branch} ${target:0:12}), so it is not a fast-forward; reconcile by hand, e.g. git reset --hard $remote/$branch if the local commits can go"
    return 1
  fi
  if ! run_logged git git merge --ff-only --quiet "$target"; then
    log "fast-forward to $new_version failed; the deployment is unchanged"
    return 1
  fi
  log "fast-forwarded $branch to $new_version (${target:0:12})"
  if requirements_changed "$head" "$target"; then
    if ! install_requirements; then
      log "installing the requirements of $new_version failed; going back to $running_version (will retry on the next check)"
      run_logged git git reset --quiet --hard "$head" || true
      install_requirements || log "reinstalling the requirements of $running_version failed"
      return 1
    fi
  else
    log "requirements unchanged; not reinstalling"
  fi
  log "restarting ${processes[*]} at $new_version"
  if restart_processes "$new_version" && healthy "$new_version"; then
    rm -f "$skip_file"
    log "updated to $new_version (${target:0:12}); healthy"
    git diff --quiet "$head" "$target" -- run.sh || return 3
    return 0
  fi
  log "version $new_version is unhealthy; it will be skipped until a newer version appears"
  printf '%s %s\n' "$new_version" "$target" >"$skip_file"
  roll_back "$head" "$running_version" "$target" || true
  return 1
}

# check_for_update in a subshell with errexit in force, so that an unexpected error ends the
# check, not the autoupdater. Sets check_status (0 or 1) and itself always succeeds: it must
# be called as a plain command, since bash turns errexit off for everything run from a
# condition or an `||` list, even inside a subshell that sets it again.
run_check() {
  set +e
  (
    set -e
    check_for_update
  )
  check_status=$?
  set -e
  case $check_status in
    0 | 1) ;;
    3)
      check_status=0
      if [ -z "$once" ]; then
        log "run.sh changed; re-executing the new autoupdater"
        _AUTOUPDATE_REEXEC=1 exec bash "$script" "$@"
      fi
      ;;
    *)
      log "the check stopped at an unexpected error (status $check_status); will retry"
      check_status=1
      ;;
  esac
}

start_neuron() {
  local name=$1
  shift
  if [ -n "${AUTOUPDATE_START_CMD:-}" ]; then
    log "starting with AUTOUPDATE_START_CMD"
    AUTOUPDATE_PROCESSES="${processes[*]}" run_logged start bash -c "$AUTOUPDATE_START_CMD" run.sh "$@" ||
      log "AUTOUPDATE_START_CMD failed; checking for updates anyway"
  elif [ -n "${RESTART_CMD:-}" ]; then
    log "RESTART_CMD is custom and AUTOUPDATE_START_CMD unset: not starting anything"
  elif pm2 describe "$name" >/dev/null 2>&1; then
    log "$name already runs under pm2"
  else
    log "starting $name under pm2: $neuron_script $*"
    run_logged pm2 pm2 start "$neuron_script" --name "$name" --interpreter "$python" --no-treekill -- "$@" ||
      log "pm2 start $name failed; checking for updates anyway"
  fi
}

main() {
  once=${AUTOUPDATE_ONCE:-}
  [ "$once" = 0 ] && once=""
  local pin=""
  case ${1:-} in
    --once)
      once=1
      shift
      ;;
    --pin-signers)
      pin=1
      shift
      ;;
  esac

  local neuron_type=validator prev="" arg
  for arg in "$@"; do
    [ "$prev" = "--neuron.type" ] && neuron_type=$arg
    case $arg in --neuron.type=*) neuron_type=${arg#*=} ;; esac
    prev=$arg
  done
  local name="dojo-$neuron_type"
  neuron_script="main_$neuron_type.py"

  UPDATE_INTERVAL=${UPDATE_INTERVAL:-1200}
  HEALTH_TIMEOUT=${HEALTH_TIMEOUT:-60}
  HEALTH_INTERVAL=${HEALTH_INTERVAL:-5}
  HEALTH_STABLE=${HEALTH_STABLE:-10}
  is_uint "$UPDATE_INTERVAL" || die "UPDATE_INTERVAL must be whole seconds, got '$UPDATE_INTERVAL'"
  is_uint "$HEALTH_TIMEOUT" || die "HEALTH_TIMEOUT must be whole seconds, got '$HEALTH_TIMEOUT'"
  [[ $HEALTH_INTERVAL =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "HEALTH_INTERVAL must be seconds, got '$HEALTH_INTERVAL'"
  [[ $HEALTH_STABLE =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "HEALTH_STABLE must be seconds, got '$HEALTH_STABLE'"

  git rev-parse --is-inside-work-tree >/dev/null 2>&1 || die "$PWD is not a git checkout; run run.sh from the cloned repository"
  head_commit=$(git rev-parse --verify --quiet HEAD || true)
  signers=${AUTOUPDATE_ALLOWED_SIGNERS:-$(git rev-parse --git-path dojo-allowed-signers)}
  [[ $signers == /* ]] || signers="$PWD/$signers"
  if [ -n "$pin" ]; then
    [ "$#" -le 1 ] || die "usage: bash run.sh --pin-signers [FILE]"
    pin_signers "${1:-}"
    return 0
  fi
  remote=${AUTOUPDATE_REMOTE:-origin}
  branch=${AUTOUPDATE_BRANCH:-$(git rev-parse --abbrev-ref HEAD)}
  [ "$branch" != HEAD ] || die "HEAD is detached; check out a branch or set AUTOUPDATE_BRANCH"
  skip_file=$(git rev-parse --git-path dojo-autoupdate-skip)

  verify=${AUTOUPDATE_VERIFY:-tag}
  case $verify in
    tag | off) ;;
    *) die "AUTOUPDATE_VERIFY must be tag (follow signed release tags) or off (follow the branch unverified), got '$verify'" ;;
  esac
  if [ "$verify" = tag ]; then
    local git_version
    git_version=$(git version)
    [[ $git_version =~ ([0-9]+)\.([0-9]+) ]] &&
      { ((BASH_REMATCH[1] > 2)) || ((BASH_REMATCH[1] == 2 && BASH_REMATCH[2] >= 34)); } ||
      die "verifying SSH-signed releases needs git 2.34 or newer ($git_version); upgrade git, or set AUTOUPDATE_VERIFY=off"
    command -v ssh-keygen >/dev/null || die "verifying releases needs ssh-keygen (OpenSSH 8.2 or newer); install it, or set AUTOUPDATE_VERIFY=off"
  fi

  read -r -a processes <<<"${AUTOUPDATE_PROCESSES:-$name}"
  processes=("${processes[@]//,/ }")
  read -r -a processes <<<"${processes[*]}"
  [ "${#processes[@]}" -gt 0 ] || die "AUTOUPDATE_PROCESSES names no process"

  python=${AUTOUPDATE_PYTHON:-}
  if [ -z "$python" ]; then
    for python in .venv/bin/python env/bin/python ""; do
      [ -x "$python" ] && break
    done
    [ -n "$python" ] || python=$(command -v python3 || true)
  fi
  [ -n "$python" ] || die "no python found; set AUTOUPDATE_PYTHON"
  [[ $python == */* && $python != /* ]] && python="$PWD/$python"

  log "settings: remote=$remote branch=$branch verify=$verify signers=$signers interval=${UPDATE_INTERVAL}s processes=${processes[*]} python=$python restart=${RESTART_CMD:-pm2} health=${HEALTH_CMD:-pm2} health_timeout=${HEALTH_TIMEOUT}s once=${once:-0}"
  if [ "$verify" = off ]; then
    log "WARNING: AUTOUPDATE_VERIFY=off: release signatures are NOT verified; whoever can push to $remote/$branch runs code on this machine with this user's rights"
  elif [ ! -s "$signers" ]; then
    log "WARNING: no allowed signers are pinned at $signers: every update is refused until they are (bash run.sh --pin-signers)"
  fi

  if [ -n "$once" ]; then
    run_check "$@"
    return "$check_status"
  fi
  [ -n "${_AUTOUPDATE_REEXEC:-}" ] || start_neuron "$name" "$@"
  local sleeper=""
  trap 'log "stopping"; [ -n "$sleeper" ] && kill "$sleeper" 2>/dev/null; exit 0' INT TERM
  while true; do
    log "next check in ${UPDATE_INTERVAL}s"
    sleep "$UPDATE_INTERVAL" &
    sleeper=$!
    wait "$sleeper" || true
    sleeper=""
    run_check "$@"
  done
}

script=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")
cd "$(dirname "$script")"
# All of the script is read before main runs, so a fast-forward that rewrites run.sh
# cannot change the code being executed.
main "$@"
exit
