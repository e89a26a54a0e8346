#!/usr/bin/env bash
# netns_lab.sh up|down|status — a tiny multi-host lab for the fleet tests: N network
# namespaces on a Linux bridge, each with its own sshd, hostname and private /opt,/srv,... view.
# From shared/RECIPES.md §1 (proven on this machine), with this test suite's own names so it
# never touches another lab: /tmp/camxfer-test-lab, bridge cxtbr0, 10.67.0.0/24, cxt-<host>.
set -euo pipefail

LAB=${LAB:-/tmp/camxfer-test-lab}        # all lab state lives here (keys, configs, per-host dirs)
BR=${BR:-cxtbr0}                     # bridge in the root namespace
NET=${NET:-10.67.0}                 # /24 prefix
HOSTS=${HOSTS:-"cam1:11 cam2:12 sto1:21 mcam:31 msto:41"}   # name:last-octet (m*: molecule's)
NSPREFIX=${NSPREFIX:-cxt-}           # namespace = $NSPREFIX<name>, host-side veth = ${NSPREFIX}v-<name>
PRIVATE_DIRS=${PRIVATE_DIRS:-"/opt/camxfer /srv/camxfer /etc/camxfer /var/lib/camxfer /var/log/camxfer /etc/systemd/system"}

ns() { echo "$NSPREFIX$1"; }
veth() { echo "${NSPREFIX}v-$1" | cut -c1-15; }   # IFNAMSIZ: 15 chars max

up() {
  if ip link show "$BR" >/dev/null 2>&1; then echo "lab already up (run: $0 down)" >&2; exit 1; fi
  mkdir -p "$LAB" "$LAB/cp" /run/sshd
  chmod 700 "$LAB"
  [[ -f $LAB/id_ed25519 ]] || ssh-keygen -q -t ed25519 -N '' -C cxlab -f "$LAB/id_ed25519"
  cp "$LAB/id_ed25519.pub" "$LAB/authorized_keys"
  : > "$LAB/known_hosts"

  ip link add "$BR" type bridge
  ip addr add "$NET.1/24" dev "$BR"
  ip link set "$BR" up

  for spec in $HOSTS; do
    name=${spec%%:*}; oct=${spec##*:}; n=$(ns "$name"); ip4="$NET.$oct"
    h="$LAB/hosts/$name"; mkdir -p "$h"

    ip netns add "$n"
    # ip netns exec bind-mounts /etc/netns/<ns>/* over /etc/*: give each host a
    # hosts file naming itself and the lab, and a resolv.conf with no reachable
    # nameserver, otherwise every getfqdn() (Ansible fact gathering!) waits ~10 s
    # for a DNS server that the namespace cannot reach.
    mkdir -p "/etc/netns/$n"
    { echo "127.0.0.1 localhost"; echo "127.0.1.1 $name"
      for s2 in $HOSTS; do echo "$NET.${s2##*:} ${s2%%:*}"; done; } > "/etc/netns/$n/hosts"
    echo "options timeout:1 attempts:1" > "/etc/netns/$n/resolv.conf"
    ip link add "$(veth "$name")" type veth peer name eth0 netns "$n"
    ip link set "$(veth "$name")" master "$BR" up
    ip -n "$n" link set lo up
    ip -n "$n" addr add "$ip4/24" dev eth0
    ip -n "$n" link set eth0 up
    ip -n "$n" route add default via "$NET.1"

    [[ -f $h/ssh_host_ed25519_key ]] || ssh-keygen -q -t ed25519 -N '' -f "$h/ssh_host_ed25519_key"
    echo "$ip4 $(cut -d' ' -f1-2 "$h/ssh_host_ed25519_key.pub")" >> "$LAB/known_hosts"
    cat > "$h/sshd_config" <<EOF
ListenAddress $ip4:22
HostKey $h/ssh_host_ed25519_key
PidFile $h/sshd.pid
PermitRootLogin prohibit-password
PubkeyAuthentication yes
AuthorizedKeysFile $LAB/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PrintMotd no
MaxStartups 50:30:100
MaxSessions 50
Subsystem sftp /usr/lib/openssh/sftp-server
EOF
    # Per-host filesystem view: ip netns exec already runs the command in a new
    # mount namespace (mounts made there do not leak back), so bind-mount the
    # host's private dirs there and exec sshd; every ssh session inherits it.
    binds=""
    rm -rf "$h/fs"   # every up starts from empty private folders, like a fresh host
    for d in $PRIVATE_DIRS; do
      mkdir -p "$h/fs$d"
      # mount points must exist on the real root fs; remember the ones we create
      [[ -d $d ]] || { mkdir -p "$d"; echo "$d" >> "$LAB/created-mountpoints"; }
      binds+="mount --bind '$h/fs$d' '$d'; "
    done
    ip netns exec "$n" unshare --uts sh -c "hostname $name; $binds exec /usr/sbin/sshd -f '$h/sshd_config' -E '$h/sshd.log'"
  done
}

down() {
  # 1. close Ansible's ControlPersist masters (ssh clients in the root namespace)
  for sock in "$LAB"/cp/* "$HOME"/.ansible/cp/"$NET".*; do   # ours + molecule's (%h-%p-%r)
    [[ -S $sock ]] && ssh -o ControlPath="$sock" -O exit dummy 2>/dev/null || true
  done
  for spec in $HOSTS; do
    name=${spec%%:*}; n=$(ns "$name")
    # 2. kill everything running inside the namespace (listener sshd, sessions,
    #    services a playbook started there); all of it was started by this lab
    if ip netns list | grep -qw "$n"; then
      pids=$(ip netns pids "$n"); [[ -n $pids ]] && kill $pids 2>/dev/null || true
      sleep 0.2
      pids=$(ip netns pids "$n"); [[ -n $pids ]] && kill -9 $pids 2>/dev/null || true
    fi
    ip netns del "$n" 2>/dev/null || true
    # 3. delete the veth explicitly: an orphaned TCP socket can keep the old
    #    namespace (and so the veth pair) alive for minutes after 'netns del'
    ip link del "$(veth "$name")" 2>/dev/null || true
    rm -rf "/etc/netns/$n" "$LAB/hosts/$name/sshd.pid"
  done
  ip link del "$BR" 2>/dev/null || true
  # 4. remove the empty mount points this lab created on the real root fs
  if [[ -f $LAB/created-mountpoints ]]; then
    sort -ru "$LAB/created-mountpoints" | xargs -r rmdir 2>/dev/null || true
    rm -f "$LAB/created-mountpoints"
  fi
  rmdir /etc/netns 2>/dev/null || true       # only if empty (up created it)
}

status() {
  ip -br addr show "$BR" 2>/dev/null || echo "no bridge"
  ip netns list
  for spec in $HOSTS; do
    name=${spec%%:*}; h="$LAB/hosts/$name"
    [[ -f $h/sshd.pid ]] && ps -o pid=,cmd= -p "$(cat "$h/sshd.pid")" || echo "$name: no sshd"
  done
}

"${1:-status}"
