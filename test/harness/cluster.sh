# cluster.sh: a whole vvm system for the shell integration tests: a vvm.conf written from a few
# parameters, vvmd, vvmover and nbdkit with the vvm plugin started, stopped and killed, and VVs
# of random bytes archived for the tests of what happens to them on tape (archived_vvs).
# functions.sh sources it: a test sources functions.sh alone, then, for example:
#
#   vvm_conf drives="LTO9 LTO8" cache.size=100M   # $tmpdir/vvm.conf, in $conf
#   start_vvmd                                    # waits until vvctl ping answers
#   start_mover m1                                # waits until vvctl ping --target mover:m1 does
#   start_plugin "$tmpdir/nbd.sock"               # nbdkit, the plugin, conf=$conf
#   vv=$(ctl create --class A --size 1M)
#
# Everything started here is stopped when the script exits (functions.sh's cleanup), the last
# started first, and its log, kept in $tmpdir, is printed when the test fails. A daemon the test
# stops itself (stop_daemon) or kills on purpose (kill_daemon) is not counted as crashed.

[[ -n ${_vvm_cluster_loaded:-} ]] && return 0
_vvm_cluster_loaded=1

# The programs under test, in the build tree.
vvmd=$VVM_BUILD_DIR/vvmd/vvmd
vvmover=$VVM_BUILD_DIR/mover/vvmover
vvctl=$VVM_BUILD_DIR/client/vvctl
vvtape=$VVM_BUILD_DIR/mover/vvtape
vvcopy=$VVM_BUILD_DIR/client/vvcopy

# ctl ARGS...: vvctl with the test's configuration ($conf).
ctl() { "$vvctl" --conf "$conf" "$@"; }

# --- vvm.conf ---

# The sections of the configuration being written, in the order of their first mention, and
# each one's "key = value" lines.
_vvm_conf_sections=()
declare -A _vvm_conf_lines _vvm_conf_given

# _vvm_conf_section SECTION: SECTION ("vvmd", "media LTO9") exists, empty if it is new.
_vvm_conf_section() {
  [[ -v "_vvm_conf_lines[$1]" ]] && return 0
  _vvm_conf_sections+=("$1")
  _vvm_conf_lines[$1]=
}

# _vvm_conf_has SECTION KEY: SECTION has a KEY line.
_vvm_conf_has() {
  grep -q "^$2 = " <<<"${_vvm_conf_lines[$1]:-}"
}

# _vvm_conf_set SECTION KEY VALUE: KEY's lines in SECTION replaced by one with VALUE, where the
# first of them was (else at the end), or removed when VALUE is empty.
_vvm_conf_set() {
  local section=$1 key=$2 value=$3 line kept='' done=''
  _vvm_conf_section "$section"
  [[ -n $value ]] || done=1
  while IFS= read -r line; do
    [[ -z $line ]] && continue
    if [[ $line == "$key = "* ]]; then
      [[ -n $done ]] && continue
      line="$key = $value"
      done=1
    fi
    kept+=$line$'\n'
  done <<<"${_vvm_conf_lines[$section]}"
  [[ -n $done ]] || kept+="$key = $value"$'\n'
  _vvm_conf_lines[$section]=$kept
}

# _vvm_conf_add SECTION KEY VALUE: one more KEY line (a list key: listen, allow-host, ...).
_vvm_conf_add() {
  _vvm_conf_section "$1"
  _vvm_conf_lines[$1]+="$2 = $3"$'\n'
}

# _vvm_conf_value SECTION KEY: KEY's value in SECTION (the first, for a list key), or nothing.
_vvm_conf_value() {
  sed -n "s/^$2 = //p" <<<"${_vvm_conf_lines[$1]:-}" | head -n1
}

# _vvm_conf_words SECTION KEY: the words of KEY's value in SECTION, one a line (the media types
# of a class or a drive, which blanks or commas separate).
_vvm_conf_words() {
  _vvm_conf_value "$1" "$2" | tr ', ' '\n\n' | grep -v '^$' || true
}

# vvm_conf [PARAMETER...]: write a complete vvm.conf (every key is described in conf/vvm.conf).
# It is $tmpdir/vvm.conf, and then $conf names it, $cache its cache folder and $library its
# tape library folder; with file=PATH it is PATH, and no variable changes (a second
# configuration beside the first). Without parameters: state-dir $tmpdir/state, vvmd listening
# on unix:$tmpdir/run/vvmd.sock, class A keeping one copy on LTO9, and no mover. PARAMETERs:
#   file=PATH            write PATH instead (see above).
#   drives="MEDIA..."    one emulated drive a media type, d0, d1, ..., all driven by the first
#                        mover (m1 unless movers= names others); class A keeps one copy on each
#                        of these types; a finished VV is archived at once (archive-max-wait 0).
#   movers="NAME..."     [mover NAME] sections, each listening on unix:$tmpdir/run/NAME.sock,
#                        with stall-timeout 20s.
#   rate=RATE            every drive's emulated-rate (by default a drive copies at disk speed).
#   SECTION.KEY=VALUE    any other key, set or replaced: vvmd.allow-uid=65534, cache.size=100M,
#                        library.kind=mtx. For the named sections (media, class, mover, drive,
#                        identity) the name comes second: media.LTO9.capacity=7500K,
#                        class.B.media=LTO9, drive.d1.emulated-rate=2M, identity.alice.user=1001;
#                        a new name makes a new section.
#   SECTION[.NAME].KEY+=VALUE  one more line of a list key: vvmd.listen+=127.0.0.1:$port.
#   SECTION[.NAME].KEY=  an empty value leaves the key out, for vvm's own default.
# Every media type that a class or a drive names gets a [media] section with capacity 1G and
# block-size 64K unless the parameters say otherwise. Sections are written in conf/vvm.conf's
# order (global, vvmd, cache, plugin, library, media, class, mover, drive, identity), a blank
# line apart.
vvm_conf() {
  local file= drives=() movers=() rate= overrides=() media=() arg lhs value kind section key i m s
  _vvm_need_tmpdir
  for arg in "$@"; do
    case $arg in
      file=*) file=${arg#file=} ;;
      drives=*) read -ra drives <<<"${arg#drives=}" ;;
      movers=*) read -ra movers <<<"${arg#movers=}" ;;
      rate=*) rate=${arg#rate=} ;;
      *.*=*) overrides+=("$arg") ;;
      *) die "vvm_conf: '$arg' is not file=, drives=, movers=, rate= or SECTION.KEY=VALUE" ;;
    esac
  done
  _vvm_conf_sections=()
  _vvm_conf_lines=()
  _vvm_conf_given=()

  _vvm_conf_set global state-dir "$tmpdir/state"
  _vvm_conf_set vvmd listen "unix:$tmpdir/run/vvmd.sock"
  ((${#drives[@]} == 0 || ${#movers[@]} > 0)) || movers=(m1)
  for m in "${movers[@]}"; do
    _vvm_conf_set "mover $m" listen "unix:$tmpdir/run/$m.sock"
    _vvm_conf_set "mover $m" stall-timeout 20s
  done
  if ((${#drives[@]} > 0)); then
    _vvm_conf_set vvmd archive-max-wait 0
    _vvm_conf_set "class A" media "${drives[*]}"
  else
    _vvm_conf_set "class A" media LTO9
  fi
  for i in "${!drives[@]}"; do
    _vvm_conf_set "drive d$i" mover "${movers[0]}"
    _vvm_conf_set "drive d$i" media "${drives[i]}"
    [[ -z $rate ]] || _vvm_conf_set "drive d$i" emulated-rate "$rate"
  done

  for arg in "${overrides[@]}"; do
    lhs=${arg%%=*} value=${arg#*=}
    kind=${lhs%%.*} key=${lhs#*.}
    case $kind in
      global | vvmd | cache | plugin | library) section=$kind ;;
      media | class | mover | drive | identity)
        [[ $key == *.* ]] || die "vvm_conf: '$arg': a [$kind] key needs its name, $kind.NAME.KEY"
        section="$kind ${key%%.*}" key=${key#*.}
        ;;
      *) die "vvm_conf: '$arg': no section '$kind' in vvm.conf" ;;
    esac
    _vvm_conf_given["$section/${key%+}"]=1
    if [[ $key == *+ ]]; then
      _vvm_conf_add "$section" "${key%+}" "$value"
    else
      _vvm_conf_set "$section" "$key" "$value"
    fi
  done

  # The media types named anywhere get the small test tapes' defaults.
  mapfile -t media < <(for s in "${_vvm_conf_sections[@]}"; do
    case $s in
      "media "*) echo "${s#media }" ;;
      "class "* | "drive "*) _vvm_conf_words "$s" media ;;
    esac
  done | awk '!seen[$0]++')
  for m in "${media[@]}"; do
    _vvm_conf_section "media $m"
    for key in capacity:1G block-size:64K; do
      [[ -n ${_vvm_conf_given["media $m/${key%%:*}"]:-} ]] && continue
      _vvm_conf_has "media $m" "${key%%:*}" || _vvm_conf_set "media $m" "${key%%:*}" "${key#*:}"
    done
  done

  [[ -n $file ]] || file=$tmpdir/vvm.conf
  {
    local first=1
    for kind in global vvmd cache plugin library media class mover drive identity; do
      for s in "${_vvm_conf_sections[@]}"; do
        [[ $s == "$kind" || $s == "$kind "* ]] || continue
        ((first)) || echo
        first=0
        echo "[$s]"
        printf '%s' "${_vvm_conf_lines[$s]}"
      done
    done
  } >"$file"
  if [[ $file == "$tmpdir/vvm.conf" ]]; then
    conf=$file
    local state
    state=$(_vvm_conf_value global state-dir)
    cache=$(_vvm_conf_value cache dir)
    library=$(_vvm_conf_value library path)
    : "${cache:=$state/cache}" "${library:=$state/library}"
  fi
}

# --- the daemons ---

# start_vvmd [VVMD_OPTION...]: start vvmd --conf $conf (and the options, --log-level debug say)
# and wait until `vvctl ping` answers. Sets $vvmd_pid and $vvmd_log: $tmpdir/vvmd.log for the
# first vvmd of the test, vvmd-2.log, vvmd-3.log ... for the next, so that every run's log stays.
start_vvmd() {
  start_daemon vvmd "$vvctl" --conf "$conf" ping --timeout 1 -- "$vvmd" --conf "$conf" "$@"
  vvmd_pid=$daemon_pid
  vvmd_log=$daemon_log
}

# start_mover NAME [VVMOVER_OPTION...]: start vvmover --conf $conf --name NAME and wait until
# `vvctl ping --target mover:NAME` answers. Sets $mover_pid and $mover_log
# ($tmpdir/mover-NAME.log, then mover-NAME-2.log ... when NAME is started again).
start_mover() {
  local name=$1
  shift
  start_daemon "mover-$name" "$vvctl" --conf "$conf" ping --target "mover:$name" --timeout 1 -- \
    "$vvmover" --conf "$conf" --name "$name" "$@"
  mover_pid=$daemon_pid
  mover_log=$daemon_log
}

# start_plugin LISTEN [NBDKIT_OPTION...]: nbdkit serving the vvm plugin with conf=$conf (its packs
# and vv/NAME exports) on the Unix socket LISTEN, or on 127.0.0.1:PORT for LISTEN tcp:PORT; the
# options go to nbdkit (--threads=1 say). Sets $nbdkit_pid and $nbdkit_log, as start_nbdkit does.
start_plugin() {
  local listen=$1
  shift
  if [[ $listen == tcp:* ]]; then
    start_nbdkit - -i 127.0.0.1 -p "${listen#tcp:}" "$@" "$VVM_PLUGIN" conf="$conf"
  else
    start_nbdkit "$listen" "$@" "$VVM_PLUGIN" conf="$conf"
  fi
}

# stop_vvmd: stop_daemon for the vvmd start_vvmd started last.
stop_vvmd() { stop_daemon "$vvmd_pid" vvmd; }

# kill_vvmd: kill_daemon for the vvmd start_vvmd started last.
kill_vvmd() { kill_daemon "$vvmd_pid"; }

# --- VVs ---

# archived_vvs N: N new VVs of class A, each 2 MiB of random bytes written into the cache (kept in
# $tmpdir/NAME.orig, for what is read back later), finished in that order, then each waited for
# (120 s at most) until archived; their names in the array $vvs. The drives and tapes are the
# test's own.
archived_vvs() {
  local i vv
  vvs=()
  for ((i = 0; i < $1; i++)); do
    vv=$(ctl create --class A --size 2M)
    head -c $((2 * M)) /dev/urandom >"$cache/$vv"
    cp "$cache/$vv" "$tmpdir/$vv.orig"
    vvs+=("$vv")
  done
  for vv in "${vvs[@]}"; do ctl finish "$vv" >/dev/null; done
  for vv in "${vvs[@]}"; do
    ctl finish "$vv" --wait --timeout 120 >/dev/null || die "$vv was not archived"
  done
}
