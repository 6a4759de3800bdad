// vvctl/main.cc: the administrator's command-line tool: its global options, its help and the
// command table. Each command is one entry in kCommands: a name, a one-line summary, its usage,
// and a function that parses its own options, in the file of its group (vv.cc, vsn.cc, pack.cc,
// status.cc, db.cc, cluster.cc; printing.cc holds what they print with).
//
//   vvctl [--conf PATH] [--vvmd ENDPOINT] [--tls-psk-file F [--tls-username U]]
//         [--tls-certificates DIR] COMMAND [OPTIONS]
//   vvctl ping [--target vvmd|mover:NAME|ENDPOINT] [--timeout SECONDS] [--count N]
//   vvctl conf check [PATH]
//   vvctl pack check [PACKTAB]
//   vvctl pack ls [PACKTAB] [--holds DIR]
//   vvctl create --class C --size S [--id N] [--owner U] [--group G] [--perms P]
//   vvctl show NAME [--json]
//   vvctl ls [--state S] [--class C] [--id N] [--json]
//   vvctl finish NAME [--wait [--timeout SECONDS]]
//   vvctl stage NAME... [--wait [--timeout SECONDS]]
//   vvctl status [--json]
//   vvctl rm NAME [--force]
//   vvctl evict NAME
//   vvctl vsn add VSN --media M [--class C]
//   vvctl vsn ls [--json] [--page-size N]
//   vvctl vsn set VSN STATE --reason TEXT
//   vvctl vsn repack VSN [--wait [--timeout SECONDS]]
//   vvctl vsn reclaim VSN
//   vvctl vsn verify VSN [--wait [--timeout SECONDS] | --list] [--json]
//   vvctl drive down NAME --reason TEXT
//   vvctl drive up NAME [--reason TEXT]
//   vvctl drive ls [--json]
//   vvctl reload [--json]
//   vvctl class ls [--json]
//   vvctl class prune CLASS
//   vvctl db stats [--json]
//   vvctl db check [--json]
//   vvctl db backup DIR
//   vvctl cluster import PACKTAB --primary NODE [--secondary NODE] [--disk NAME]
//       [--pool NODE[:DISK],...] [--replace] [--timeout SECONDS] [--json]
//   vvctl cluster nodes [--json]
//   vvctl cluster map [--json]
//   vvctl pack move NAME --primary NODE [--disk DISK] [--timeout S] [--json]
//   vvctl pack set-secondary NAME NODE[:DISK] | --none [--timeout S] [--json]
//   vvctl pack set-pool NAME NODE[:DISK][,NODE[:DISK]...] | --none [--timeout S] [--json]
//   vvctl pack chmod NAME MODE, vvctl pack chown NAME USER[:GROUP] [--timeout S] [--json]
//   vvctl cluster drain NODE [--undo] [--timeout S] [--json], vvctl cluster undrain NODE [--json]
//
// Exit codes: 0 success, 1 the operation failed (a daemon is down, refused, or answered with an
// error), 2 a usage or configuration error.
#include <algorithm>
#include <cstdio>
#include <exception>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/core.h>

#include "common/cli.h"
#include "vvctl/classes.h"
#include "vvctl/cluster.h"
#include "vvctl/command.h"
#include "vvctl/db.h"
#include "vvctl/pack.h"
#include "vvctl/reconfig.h"
#include "vvctl/status.h"
#include "vvctl/vsn.h"
#include "vvctl/vv.h"

namespace vvm::vvctl {
namespace {

const std::vector<Command>& commands() {
  static const std::vector<Command> kCommands = {
      {"ping", "ask a daemon whether it is there",
       "vvctl [--conf PATH] ping [--target vvmd|mover:NAME|ENDPOINT] [--timeout SECONDS] "
       "[--count N]\n"
       "  Connects to vvmd (the first [vvmd] listen address), to a mover (its [mover NAME]\n"
       "  listen address) or to an endpoint (unix:/PATH or HOST:PORT), sends N pings a fifth\n"
       "  of a second apart (default 1) and prints each reply and its round trip. Fails (exit 1)\n"
       "  when nothing answers within --timeout (default 5 seconds) or the daemon refuses.",
       cmd_ping},
      {"conf check", "check vvm.conf and the packtab it names",
       "vvctl [--conf PATH] conf check [PATH]\n"
       "  Reads vvm.conf (PATH, else --conf, else $VVM_CONF, else /etc/vvm/vvm.conf) and the\n"
       "  packtab it names, prints a summary, or the first error with its file, line and\n"
       "  reason (exit 2).",
       cmd_conf_check},
      {"pack check", "check a pack table and its backings",
       "vvctl [--conf PATH] pack check [PACKTAB]\n"
       "  Reads PACKTAB (default: vvm.conf's [plugin] packtab) and checks it as the nbdkit\n"
       "  plugin does: fields, sizes, modes, owners, duplicate names, overlapping packs (also\n"
       "  through symlinks and hard links), missing backings, packs past the end of theirs.\n"
       "  Prints \"PACKTAB: ok: N packs in M backings\", or the first problem with its file,\n"
       "  line and reason, as nbdkit prints it (exit 2).",
       cmd_pack_check},
      {"pack ls", "list packs and who holds them now",
       "vvctl [--conf PATH] pack ls [PACKTAB] [--holds DIR]\n"
       "  One line a pack: name, size, mode, backing and offset, owner, group and permissions,\n"
       "  and who holds it now (client, hold, since, nbdkit pid), from the holds records the\n"
       "  plugin writes (DIR; default: vvm.conf's state-dir/holds, else /run/vvm/holds) and the\n"
       "  locks on the backing. Works whether or not vvmd runs.",
       cmd_pack_ls},
      {"create", "create a virtual volume",
       "vvctl [--conf PATH] create --class C --size S [--id N] [--owner U] [--group G] "
       "[--perms P]\n"
       "  Asks vvmd for a new hot VV of storage class C and S bytes (K, M, G, T suffixes), a\n"
       "  sparse file in the cache, and prints its name (class letter and serial,\n"
       "  A0000000042) alone on stdout. N is your own integer id for it (default 0). Owner and\n"
       "  group default to yours, perms (octal) to 0640; only root and vvmd's user may give a VV\n"
       "  to another owner.",
       cmd_create},
      {"show", "show one virtual volume",
       "vvctl [--conf PATH] show NAME [--json]\n"
       "  Every field of the VV's record: class, serial, id, size, state (hot, finished,\n"
       "  archived), cache (cached, evicted, staging), owner, times, checksum and its copies\n"
       "  on tape, each named by its tape's media type as vvmd knows it (extra: a type the\n"
       "  class no longer lists), then the class's types not yet written. --json prints one\n"
       "  object, times as unix seconds and sizes in bytes.",
       cmd_show},
      {"ls", "list virtual volumes",
       "vvctl [--conf PATH] ls [--state S] [--class C] [--id N] [--json] [--page-size N]\n"
       "  The VVs in name order, one a line (NAME CLASS STATE CACHE SIZE OWNER ID CREATED\n"
       "  COPIES), those of state S (hot, finished, archived), class C and id N when given.\n"
       "  --json prints an array of the objects that show --json prints. vvmd sends the list in\n"
       "  pages of N VVs (default and most: 1000), which ls follows to the end.",
       cmd_ls},
      {"finish", "make a hot virtual volume read-only, for archiving",
       "vvctl [--conf PATH] finish NAME [--wait [--timeout SECONDS]]\n"
       "  Moves the VV from hot to finished: read-only from now on, and queued for its\n"
       "  copies on tape, one on a VSN of each media type of its class. Only its owner, root\n"
       "  and vvmd's user may; a VV that is not hot is refused, naming its state. --wait then\n"
       "  waits until the VV is archived, printing each copy (VSN and file) as it is written\n"
       "  (a VV finished earlier is waited for too); with --timeout it gives up after SECONDS\n"
       "  (exit 1), saying how many copies exist.",
       cmd_finish},
      {"stage", "bring evicted virtual volumes back from tape",
       "vvctl [--conf PATH] stage NAME... [--wait [--timeout SECONDS]]\n"
       "  Asks vvmd to read each evicted VV back into the cache from its best copy (one on a\n"
       "  tape already in a drive first; stages of VVs on one tape share one mount and are read\n"
       "  in file order) and prints where each stands. A cached VV needs nothing. --wait then\n"
       "  waits until all are in the cache, with a progress bar on a terminal, and puts them\n"
       "  before archive writes; --timeout gives up after SECONDS (exit 1). Opening an evicted\n"
       "  VV through its vv/NAME export stages it too, without this command.",
       cmd_stage},
      {"status", "what vvmd is doing: drives, mounts, queues, cache",
       "vvctl [--conf PATH] status [--json]\n"
       "  vvmd's uptime, mounts since it started and VVs open through NBD; the cache's use\n"
       "  and watermarks; each drive (its mover, media type, the VSN vvmd last mounted there,\n"
       "  its mounts and the copy running now, with its progress, or DOWN since when, by whom\n"
       "  and why); and the queues: archive\n"
       "  writes by class and media type, stages by VSN (files, bytes, the oldest request's\n"
       "  age, whether a client waits), verify reads by VSN; a line for each repack running\n"
       "  (how far it has come). --json prints all of it as one object (repacks: an array).",
       cmd_status},
      {"rm", "remove a virtual volume",
       "vvctl [--conf PATH] rm NAME [--force]\n"
       "  Removes the VV's record and its cache file and says what it removed. Refused while\n"
       "  the VV has copies on tape (the message lists them) unless --force, which leaves the\n"
       "  tape files in place. Only its owner, root and vvmd's user may.",
       cmd_rm},
      {"evict", "drop an archived virtual volume from the disk cache now",
       "vvctl [--conf PATH] evict NAME\n"
       "  Removes the VV's cache file now, whatever the cache's watermarks, and prints\n"
       "  \"NAME: evicted (N bytes freed)\", or \"NAME: already evicted\" (exit 0, nothing\n"
       "  changed). Its copies on tape stay; opening it later stages it back. Only an archived\n"
       "  VV can be evicted: a hot or finished one is refused, naming its state, and one that\n"
       "  is open or being staged is refused, naming who has it open (exit 1). Only its owner,\n"
       "  root and vvmd's user may.",
       cmd_evict},
      {"vsn add", "add a tape volume (VSN) to the catalogue",
       "vvctl [--conf PATH] vsn add VSN --media M [--class C]\n"
       "  Adds tape volume VSN (1 to 6 uppercase letters or digits) of media type M to vvmd's\n"
       "  catalogue, for class C's copies (C must list M), or for any class that lists M when\n"
       "  --class is not given. With an emulated library ([library] kind = emulated) vvmd\n"
       "  creates the tape image LIBRARY/VSN.tap with M's capacity and writes its VOL label; an\n"
       "  image already there is registered if its VOL label names VSN and M (its next file\n"
       "  found on it), refused otherwise, saying what it holds. With a real library (kind =\n"
       "  mtx) only the record is made: label the tape on a drive first with\n"
       "  'vvtape label /dev/nstN --vsn VSN --media M'. Only root and vvmd's user may add.\n"
       "  Refused (exit 1), naming why: a bad VSN, an unknown media type or class, a class\n"
       "  that does not list M, a VSN already in the catalogue.",
       cmd_vsn_add},
      {"vsn ls", "list tape volumes (VSNs)",
       "vvctl [--conf PATH] vsn ls [--json] [--page-size N]\n"
       "  The VSNs in name order, one a line (VSN MEDIA CLASS STATE LOCATION FILES LIVE DEAD\n"
       "  USED CAPACITY ERRORS): state blank, hot, full, read-only, disabled, reclaim, bad or\n"
       "  retired; FILES the tape files written, LIVE those that are VVs' copies, DEAD those no\n"
       "  VV needs (removed VVs', bad ones), each as files/bytes; USED the bytes written on it;\n"
       "  ERRORS its bad files (failed their checks) and its failed reads and writes. Then a\n"
       "  line for each VSN's class (since when, and whether it took the class of its first\n"
       "  archive) and state set by hand or by vvmd (since when, by whom, why). --json prints\n"
       "  an array of objects with every field of the record (name, media, class, state,\n"
       "  location, next_file, bytes_used, capacity, errors, last_mount) and bad_files,\n"
       "  errors_in_row, live_files, live_bytes, dead_files, dead_bytes, class_since,\n"
       "  class_how, state_since, state_by, state_reason, and for a repacked tape a repack\n"
       "  object (state running, done or reclaimed; files and bytes left and moved), sizes in\n"
       "  bytes; a line below the table shows a repack running. vvmd sends the list\n"
       "  in pages of N VSNs (default and most: 1000), which ls follows to the end.",
       cmd_vsn_ls},
      {"vsn set", "set a tape volume's state",
       "vvctl [--conf PATH] vsn set VSN STATE --reason TEXT\n"
       "  Sets VSN's state, recording who, when and why (vsn ls shows them): hot (written),\n"
       "  full, read-only (read, never written), disabled (never mounted), reclaim (being\n"
       "  emptied: read, never written), bad (never written; read only for a copy found\n"
       "  nowhere else) or retired. vvmd itself sets a VSN read-only after 3 failed copies in\n"
       "  a row. Only root and vvmd's user may. Refused (nothing changes), naming why: an\n"
       "  unknown VSN or state, no reason.",
       cmd_vsn_set},
      {"vsn repack", "move a tape volume's live copies to other tapes",
       "vvctl [--conf PATH] vsn repack VSN [--wait [--timeout SECONDS]]\n"
       "  vvmd moves every live copy on VSN to other tapes of its media type: each VV is\n"
       "  staged into the cache if it is not there (the movers copy between a tape and the\n"
       "  cache, not tape to tape), then written to another tape; each move (the copy's new\n"
       "  place, the old tape file dead) is one commit. Nothing more is written to VSN. Once\n"
       "  nothing live is left VSN is set reclaim. The repack is recorded in vvmd's database\n"
       "  and goes on after a restart of vvmd or a mover; 'vvctl status' and 'vsn ls' show\n"
       "  how far it has come. --wait: until it is done (exit 1 after --timeout). Only root\n"
       "  and vvmd's user may. Refused (exit 1, nothing changes), naming why: an unknown VSN,\n"
       "  one being repacked already, a disabled one, one whose copies no other tape of its\n"
       "  media type can take (blank, or hot of the class).",
       cmd_vsn_repack},
      {"vsn reclaim", "write an emptied tape volume again from file 1",
       "vvctl [--conf PATH] vsn reclaim VSN\n"
       "  VSN, in state reclaim (after 'vsn repack') with no live file, gets a fresh VOL\n"
       "  label (an emulated tape: what followed the label is cut off; nothing else on the\n"
       "  tape is overwritten; with a real library label the tape with 'vvtape label' first),\n"
       "  its dead files are forgotten, and it is hot from file 1. Only root and vvmd's user\n"
       "  may. Refused (exit 1, nothing changes), naming why: an unknown VSN, one in another\n"
       "  state, being repacked or copied, or still holding live files.",
       cmd_vsn_reclaim},
      {"vsn verify", "read a tape volume's copies back and check them",
       "vvctl [--conf PATH] vsn verify VSN [--wait [--timeout SECONDS] | --list] [--json]\n"
       "  vvmd has every live copy on VSN read back whole on drives no stage or archive\n"
       "  wants (a stage asked for meanwhile goes first), its VOL, HDR and EOF labels, size\n"
       "  and checksum checked against the database, and records for each copy when and how\n"
       "  it was verified and the result (the verify table). A copy that fails is marked bad\n"
       "  (vvctl show lists it so) and made again from a good copy. --wait: until every read\n"
       "  is done, then one line a copy and a count; exit 1 if one was bad (or after\n"
       "  --timeout); --json: the copies read as an array of objects (vsn, file, vv, copy,\n"
       "  when, how, good, why). --list reads nothing: it prints each copy's last verify\n"
       "  (anyone may). Only root and vvmd's user may verify. Refused (exit 1), naming why:\n"
       "  an unknown VSN, a disabled one.",
       cmd_vsn_verify},
      {"drive down", "take a tape drive out of use",
       "vvctl [--conf PATH] drive down NAME --reason TEXT\n"
       "  vvmd sends nothing more to drive NAME (a copy running there ends) until 'drive up';\n"
       "  a tape in it counts as in no drive. vvmd takes a drive down by itself after 3 failed\n"
       "  copies in a row, and says so in its log, 'vvctl status' and 'drive ls'. It stays\n"
       "  down across restarts. Only root and vvmd's user may. Refused for an unknown drive,\n"
       "  naming vvm.conf's drives.",
       cmd_drive_down},
      {"drive up", "put a tape drive back in use",
       "vvctl [--conf PATH] drive up NAME [--reason TEXT]\n"
       "  Brings drive NAME back into use, recording who and when.",
       cmd_drive_up},
      {"drive ls", "list the tape drives and their states",
       "vvctl [--conf PATH] drive ls [--json]\n"
       "  Each drive of vvm.conf, its mover and media type, up or down, since when, by whom\n"
       "  and why. --json prints an array of objects (name, mover, media, state, since, by,\n"
       "  reason, errors_in_row).",
       cmd_drive_ls},
      {"reload", "make vvmd read vvm.conf again",
       "vvctl [--conf PATH] reload [--json]\n"
       "  vvmd reads its vvm.conf again (as on SIGHUP) and applies what may change while it\n"
       "  runs: storage classes (media types, read-max-drives, write-max-drives,\n"
       "  archive-min-wait, description; new classes; a class with no VVs dropped) and new\n"
       "  media types. Prints each change applied and what else changed in the file that waits\n"
       "  for a restart (listen, folders, movers, drives...). Refused, the running configuration\n"
       "  kept (exit 1), for a file that does not load or a class change vvmd cannot honour: a\n"
       "  media type no drive of vvmd's takes, or that no tape may take the class's copies of\n"
       "  (add a blank one first), more media types than a VV has copies (4), a class dropped\n"
       "  while VVs of it exist. A class that gains a media type has its archived VVs' copies\n"
       "  made in the background ('vvctl class ls' counts them). Only root and vvmd's user may.\n"
       "  --json: an object (path, applied, restart).",
       cmd_reload},
      {"class ls", "list the storage classes, the copies they lack and the extra ones",
       "vvctl [--conf PATH] class ls [--json]\n"
       "  Each storage class vvmd runs with: its media types, its VVs, the copies on each\n"
       "  type, how many VVs lack a copy on a type (a type added to the class; with how many of\n"
       "  those copies are on their way: queued, staged or written now), the extra copies\n"
       "  (on types the class no longer lists, kept until 'vvctl class prune') and the drives\n"
       "  it holds for reading and writing of its read-max-drives/write-max-drives ('-': no\n"
       "  limit). Reads every VV's record. --json prints an array of objects (class,\n"
       "  description, vvs, read_max_drives, write_max_drives, reading, writing, media: an\n"
       "  array of objects: media, listed, copies, bytes, lacking, lacking_bytes, on_way).",
       cmd_class_ls},
      {"class prune", "release a storage class's extra copies",
       "vvctl [--conf PATH] class prune CLASS\n"
       "  The copies of CLASS's VVs on media types the class no longer lists are released:\n"
       "  their tape files are marked dead (counted in 'vsn ls' DEAD, as after 'rm'; nothing\n"
       "  on tape is overwritten) and taken out of their VVs. A VV that still lacks one of the\n"
       "  class's copies keeps its extra ones (counted as kept). Only root and vvmd's user may.\n"
       "  Refused for an unknown class, naming the classes.",
       cmd_class_prune},
      {"db stats", "vvmd's database: its tables and journal",
       "vvctl [--conf PATH] db stats [--json]\n"
       "  vvmd's database folder, how much of its journal is used (and the size past which a\n"
       "  checkpoint empties it), and each table (vv, vsn, counter, copy, state, verify): its\n"
       "  records, its slots (the header's included) and the free ones an insert reuses, and\n"
       "  its file.",
       cmd_db_stats},
      {"db check", "check vvmd's database whole, naming each problem",
       "vvctl [--conf PATH] db check [--json]\n"
       "  Checks the database while vvmd runs (changes wait meanwhile): every index against a\n"
       "  full scan of its table, every record decoded, every VV's copies against its VSNs\n"
       "  (the VSN is in the catalogue, the file below its next file, no two copies in one tape\n"
       "  file) and each class's serial counter against its VVs. Exit 0 and \"sound\" when all\n"
       "  is well; else each problem on a line of its own and exit 1. --json prints the tables\n"
       "  as db stats does, \"sound\" and the problems.",
       cmd_db_check},
      {"db backup", "copy vvmd's database while it runs",
       "vvctl [--conf PATH] db backup DIR\n"
       "  vvmd copies its tables into DIR (made if missing; refused if it holds a database\n"
       "  already) as of one instant, once everything it has acknowledged is written, and syncs\n"
       "  them: a vvmd whose database-dir is DIR opens the copy. Changes wait while the files\n"
       "  are copied. Only root and vvmd's user may, over vvmd's Unix socket.",
       cmd_db_backup},
      {"cluster import", "seed the cluster's pack mappings in etcd from a packtab",
       "vvctl [--conf PATH] cluster import PACKTAB --primary NODE [--secondary NODE] [--disk "
       "NAME]\n"
       "       [--pool NODE[:DISK][,NODE[:DISK]...]] [--replace [--timeout SECONDS]] [--json]\n"
       "  Writes a mapping in etcd (PREFIX/pack/NAME, vvm.conf's [cluster] prefix) for every pack\n"
       "  of PACKTAB: its primary node NODE and secondary node, if given; its offset, size, mode,\n"
       "  owner, group and permissions as the packtab says; epoch 1. The disk of each node is\n"
       "  NAME (--disk, for both nodes), else the node's disk whose path is the pack's backing,\n"
       "  as the node registered it (so the node must be up). --pool gives every pack a request\n"
       "  pool: more nodes reaching the same disk (an entry's DISK, else as for the nodes above),\n"
       "  each node once, none the primary or secondary. Backings need not exist on this\n"
       "  host. A pack already mapped is refused, and nothing is written, unless --replace, which\n"
       "  overwrites its mapping with the next epoch through the reconfiguration barrier, as\n"
       "  pack move does (every live node acknowledges within --timeout, 10 s, or nothing\n"
       "  changes); new packs are simply written. Packs go in transactions of 100: each is\n"
       "  refused whole if another writer changed one of its packs meanwhile. Prints the mappings\n"
       "  written (as pack move does), a line a barrier run, and how many packs it imported;\n"
       "  --json prints one object: packtab, imported, replaced, packs (the mappings written),\n"
       "  acked (the nodes that acknowledged) and reconfigurations (each barrier's id, acked,\n"
       "  barrier_us, total_us and revision; none when nothing was replaced).",
       cmd_cluster_import},
      {"cluster nodes", "list the cluster's nodes",
       "vvctl [--conf PATH] cluster nodes [--json]\n"
       "  The cluster's nodes, one a line, by name: those registered in etcd (state live), with\n"
       "  their advertised NBD address, disks (NAME=PATH), the seconds their membership lease\n"
       "  has left and when they registered; and those that a pack's mapping names (primary,\n"
       "  secondary, pool) or that are drained but hold no membership (state DOWN: killed, or\n"
       "  stopped or cut off past their lease; - for the rest); and since when each is drained\n"
       "  (cluster drain; - when not). --json prints an array: the records of live nodes (name,\n"
       "  address, disks, started as unix seconds) with lease (hex) and lease_ttl_left, the\n"
       "  name alone for a node that is down; for every node live (true or false), drained\n"
       "  (true or false), drained_since (unix seconds) when drained, and packs (the names of\n"
       "  the packs whose mappings name it). A key under PREFIX/node/ or PREFIX/drained/ that\n"
       "  does not decode is reported on stderr, naming the key, and skipped (exit 1).",
       cmd_cluster_nodes},
      {"cluster map", "list the packs' mappings in etcd",
       "vvctl [--conf PATH] cluster map [--json]\n"
       "  One line a pack: name, primary and secondary (NODE:DISK), its pool (NODE:DISK,...;\n"
       "  - for none), offset and size in the disk, mode, owner:group, permissions, the\n"
       "  mapping's epoch, each node's path up or down (the pool's too), and its holders: the\n"
       "  exclusive one (CLIENT on NODE since TIME, from PREFIX/hold/PACK), else the readers and\n"
       "  shared writers (CLIENT on NODE (read|shared), ..., from PREFIX/users/PACK/); - for\n"
       "  none. --json prints an array of the records as etcd holds them (name, primary and\n"
       "  secondary as {node, disk}, pool as a list of them when there is one, offset and size in\n"
       "  bytes, mode, owner and group as numbers, perms in octal, epoch), with paths, holder\n"
       "  (null or {node, client, since}) and users ([{node, kind, client, since}]). A key under\n"
       "  PREFIX/pack/, PREFIX/hold/ or PREFIX/users/ that does not decode is reported on\n"
       "  stderr, naming the key and the reason, and skipped (exit 1).",
       cmd_cluster_map},
      {"pack move", "make another node a pack's primary, while nodes serve it",
       "vvctl [--conf PATH] pack move NAME --primary NODE [--disk DISK] [--timeout SECONDS]\n"
       "       [--json]\n"
       "  Cluster mode. NODE becomes the primary of pack NAME: when NODE is its secondary the two\n"
       "  swap, otherwise NODE's DISK (by default the primary's disk name) replaces the primary.\n"
       "  NODE must be a live member, not drained, with that disk. The change goes through the\n"
       "  reconfiguration barrier: every live node holds new requests of the pack, drains the\n"
       "  ones it serves and acknowledges in etcd; the mapping is then written with the next\n"
       "  epoch and the nodes resume. A node that does not acknowledge within --timeout (10 s)\n"
       "  is named and nothing changes. Prints the new mapping and how long requests were held;\n"
       "  --json prints it as an object (id, packs, acked, barrier_us, total_us, revision).",
       cmd_pack_move},
      {"pack set-secondary", "give a pack another secondary, or none",
       "vvctl [--conf PATH] pack set-secondary NAME NODE[:DISK] | --none [--timeout SECONDS]\n"
       "       [--json]\n"
       "  Cluster mode. NODE's DISK (by default the primary's disk name) becomes the secondary of\n"
       "  pack NAME, or --none removes it; through the barrier, as pack move.",
       cmd_pack_set_secondary},
      {"pack set-pool", "give a pack a request pool of more servers, or none",
       "vvctl [--conf PATH] pack set-pool NAME NODE[:DISK][,NODE[:DISK]...] | --none\n"
       "       [--timeout SECONDS] [--json]\n"
       "  Cluster mode. The disks listed (DISK by default the primary's disk name) become the\n"
       "  pool of pack NAME: nodes that reach the pack's disk too and serve it beside the primary\n"
       "  and the secondary, other nodes spreading its requests over all of them by load; --none\n"
       "  removes it. Each node must be a live member, not drained, with that disk, and be named\n"
       "  once (not the primary or secondary). Through the barrier, as pack move.",
       cmd_pack_set_pool},
      {"pack chmod", "change a pack's permissions on every node",
       "vvctl [--conf PATH] pack chmod NAME MODE [--timeout SECONDS] [--json]\n"
       "  Cluster mode. MODE (octal, 0660) becomes the permissions of pack NAME in its mapping;\n"
       "  every node checks new connections against it as it resumes from the barrier (as pack\n"
       "  move), moments after the command returns. Connections already open go on.",
       cmd_pack_chmod},
      {"pack chown", "change a pack's owner and group on every node",
       "vvctl [--conf PATH] pack chown NAME USER[:GROUP] [--timeout SECONDS] [--json]\n"
       "  Cluster mode. USER (and GROUP), by name or number, become the owner (and group) of\n"
       "  pack NAME in its mapping, as numbers, applied by every node as pack chmod.",
       cmd_pack_chown},
      {"cluster drain", "move every pack off a node as primary, and the node out of every pool",
       "vvctl [--conf PATH] cluster drain NODE [--undo] [--timeout SECONDS] [--json]\n"
       "  Every pack whose primary is NODE swaps with its secondary (which must be live and not\n"
       "  drained; a pack with a pool and no secondary takes its first live pool server; a pack\n"
       "  with neither is named and nothing changes), and NODE leaves every request pool (its\n"
       "  pool entries, and its place as the secondary of a pack that keeps a pool), in one\n"
       "  reconfiguration; NODE is marked drained (PREFIX/drained/NODE): pack move, pack\n"
       "  set-secondary and pack set-pool refuse it until cluster undrain NODE (or --undo).\n"
       "  --json prints the object of pack move with drained (NODE); packs and acked are empty\n"
       "  when no pack had to change.",
       cmd_cluster_drain},
      {"cluster undrain", "end a node's maintenance",
       "vvctl [--conf PATH] cluster undrain NODE [--json]\n"
       "  Removes NODE's drained mark; packs may be mapped to it again (moving them back is up\n"
       "  to pack move). --json prints an object: undrained (NODE) and drained_since (unix\n"
       "  seconds; null when the mark did not decode).",
       cmd_cluster_undrain},
  };
  return kCommands;
}

void print_help() {
  fmt::print(
      "Usage: vvctl [--conf PATH] [--vvmd ENDPOINT] [TLS OPTIONS] COMMAND [OPTIONS]\n"
      "Administer vvm: create, list, finish, evict and remove virtual volumes, add and list tape\n"
      "volumes, talk to vvmd and the movers, check vvm.conf and pack tables, list packs and who\n"
      "holds them, seed and list a cluster's pack mappings and nodes in etcd.\n\n"
      "Options:\n"
      "  -c, --conf PATH  vvm.conf to read (default: $VVM_CONF, else /etc/vvm/vvm.conf)\n"
      "  --vvmd ENDPOINT  where vvmd is (default: $VVM_VVMD, else vvm.conf's first [vvmd]\n"
      "                   listen): unix:/PATH, HOST:PORT, or tls:HOST:PORT over TLS; vvm.conf\n"
      "                   is then read only if it is there or named\n"
      "  --tls-psk-file FILE     TLS-PSK key file, USERNAME:HEXKEY lines (psktool) (default:\n"
      "                          $VVM_TLS_PSK_FILE)\n"
      "  --tls-username NAME     which user of that file, if it holds several\n"
      "                          (default: $VVM_TLS_USERNAME)\n"
      "  --tls-certificates DIR  X.509 instead: ca-cert.pem, client-cert.pem, client-key.pem\n"
      "                          (default: $VVM_TLS_CERTIFICATES)\n"
      "  -h, --help       print this help and exit\n"
      "  --version        print the version and exit\n\n"
      "Commands:\n");
  for (const auto& c : commands()) fmt::print("  {:<19} {}\n", c.name, c.summary);
  fmt::print(
      "\n'vvctl help COMMAND' or 'vvctl COMMAND --help' describes one command.\n"
      "Exit codes: 0 success, 1 the operation failed (vvmd or etcd is down, refused or answered\n"
      "with an error), 2 a usage or configuration error.\n");
}

int run(int argc, char** argv) {
  Globals g;
  g.tls = rpc::TlsClientSettings::from_env();  // the options below override it
  Args rest;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (!rest.empty()) {
      rest.emplace_back(a);
    } else if (a == "--help" || a == "-h") {
      print_help();
      return kOk;
    } else if (a == "--version") {
      fmt::print("vvctl (vvm) {}\n", VVM_VERSION);
      return kOk;
    } else if (a == "--conf" || a == "-c") {
      if (++i == argc) {
        fmt::print(stderr, "vvctl: --conf needs a path\n");
        return kUsage;
      }
      g.conf_path = argv[i];
    } else if (a.starts_with("--conf=")) {
      g.conf_path = std::string(a.substr(7));
    } else if (auto* field = a == "--vvmd"               ? &g.vvmd
                             : a == "--tls-psk-file"     ? &g.tls.psk_file
                             : a == "--tls-username"     ? &g.tls.username
                             : a == "--tls-certificates" ? &g.tls.certificates
                                                         : nullptr) {
      if (++i == argc) {
        fmt::print(stderr, "vvctl: {} needs a value\n", a);
        return kUsage;
      }
      *field = argv[i];
    } else if (a.starts_with("-")) {
      fmt::print(stderr, "vvctl: unknown option '{}'\nTry 'vvctl --help'.\n", a);
      return kUsage;
    } else {
      rest.emplace_back(a);
    }
  }
  if (rest.empty()) {
    print_help();
    return kUsage;
  }
  if (rest[0] == "help") {
    std::string topic;
    for (size_t i = 1; i < rest.size(); ++i) topic += (i > 1 ? " " : "") + rest[i];
    if (topic.empty()) {
      print_help();
      return kOk;
    }
    for (const auto& c : commands()) {
      if (c.name == topic) {
        fmt::print("Usage: {}\n", c.usage);
        return kOk;
      }
    }
    fmt::print(stderr, "vvctl help: no command '{}'\n", topic);
    return kUsage;
  }
  // The longest command name that the words start with ("conf check" before "conf").
  const Command* best = nullptr;
  size_t best_words = 0;
  for (const auto& c : commands()) {
    std::vector<std::string> words;
    std::string name(c.name);
    for (size_t p = 0; p <= name.size();) {
      size_t q = name.find(' ', p);
      if (q == std::string::npos) q = name.size();
      words.push_back(name.substr(p, q - p));
      p = q + 1;
    }
    if (words.size() <= rest.size() && std::equal(words.begin(), words.end(), rest.begin()) &&
        words.size() > best_words) {
      best = &c;
      best_words = words.size();
    }
  }
  if (!best) {
    // A group's first word alone ("vvctl cluster --help"): its commands, as --help lists them.
    std::vector<const Command*> group;
    for (const auto& c : commands()) {
      if (std::string_view(c.name).starts_with(rest[0] + " ")) group.push_back(&c);
    }
    if (!group.empty()) {
      const bool help = rest.size() == 2 && (rest[1] == "--help" || rest[1] == "-h");
      std::FILE* out = help ? stdout : stderr;
      if (help) {
        fmt::print(out, "Commands of vvctl {}:\n", rest[0]);
      } else if (rest.size() == 1) {
        fmt::print(out, "vvctl {}: give one of its commands:\n", rest[0]);
      } else {
        fmt::print(out, "vvctl: unknown command '{} {}'; the commands of vvctl {} are:\n", rest[0],
                   rest[1], rest[0]);
      }
      for (const Command* c : group) fmt::print(out, "  {:<19} {}\n", c->name, c->summary);
      fmt::print(out, "'vvctl help COMMAND' or 'vvctl COMMAND --help' describes one command.\n");
      return help ? kOk : kUsage;
    }
    fmt::print(stderr, "vvctl: unknown command '{}'\nTry 'vvctl --help'.\n", rest[0]);
    return kUsage;
  }
  Args command_args(rest.begin() + static_cast<long>(best_words), rest.end());
  if (cli::wants_help(command_args)) {
    fmt::print("Usage: {}\n", best->usage);
    return kOk;
  }
  return best->run(g, command_args);
}

}  // namespace
}  // namespace vvm::vvctl

int main(int argc, char** argv) {
  try {
    return vvm::vvctl::run(argc, argv);
  } catch (const std::exception& e) {
    fmt::print(stderr, "vvctl: {}\n", e.what());
    return 1;
  }
}
