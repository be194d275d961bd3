// `bitville php-agent --check`: can the daemon bind its socket where agent.php (running as
// PHP-FPM's group) can write to it, keep its buffer, and reach the collector?
//
// The socket is created by the daemon: its owner is the daemon's user, its group the directory's
// group when the directory is setgid, else the daemon's own group, its mode socket.mode.
// PHP needs search (x) on the directory and write on the socket, through the group or "other".
import { constants, accessSync, readFileSync, statSync, type Stats } from 'node:fs';
import { dirname } from 'node:path';
import { checkBufferPath, checkCollector, fail, nearestExisting, ok, statIfAny, whoAmI, type CheckResult } from '../runtime/check.js';
import type { PhpAgentConfig } from './config.js';

/** gid of a group name, from /etc/group (Node has no getgrnam). */
export function groupId(name: string, groupFile = '/etc/group'): number | undefined {
  let text: string;
  try {
    text = readFileSync(groupFile, 'utf8');
  } catch {
    return undefined;
  }
  for (const line of text.split('\n')) {
    const [group, , gid] = line.split(':');
    if (group === name && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
  }
  return undefined;
}

function groupName(gid: number): string {
  try {
    for (const line of readFileSync('/etc/group', 'utf8').split('\n')) {
      const [group, , id] = line.split(':');
      if (id === String(gid)) return group!;
    }
  } catch {
    // fall through
  }
  return String(gid);
}

const octal = (mode: number) => `0${(mode & 0o7777).toString(8)}`;

export function checkSocket(config: PhpAgentConfig, phpGroup: string): CheckResult[] {
  const { path, mode } = config.socket;
  const dir = dirname(path);
  const phpGid = groupId(phpGroup);
  if (phpGid === undefined) return [fail(`group ${phpGroup} (PHP-FPM's) does not exist on this machine`, 'pass --php-group with the group your PHP-FPM pools run as (pool setting `group`)')];
  const unitFix = `as deploy/systemd/bitville-php-agent.service does with Group=${phpGroup}, RuntimeDirectory=bitville, RuntimeDirectoryMode=0750`;

  let dirStat: Stats | undefined = statIfAny(dir);
  let dirGid: number;
  let dirMode: number;
  const results: CheckResult[] = [];
  if (dirStat) {
    if (!dirStat.isDirectory()) return [fail(`socket directory ${dir} is not a directory`, 'set socket.path under a directory')];
    try {
      accessSync(dir, constants.W_OK | constants.X_OK);
    } catch {
      return [fail(`socket directory ${dir} is not writable by ${whoAmI()}, so the daemon cannot bind ${path}`, `run the daemon as the directory's owner, ${unitFix}`)];
    }
    dirGid = dirStat.gid;
    dirMode = dirStat.mode;
    results.push(ok(`socket directory ${dir} exists (owner uid ${dirStat.uid}, group ${groupName(dirStat.gid)}, mode ${octal(dirStat.mode)}) and the daemon can bind in it`));
  } else {
    const existing = nearestExisting(dir);
    try {
      if (!statSync(existing).isDirectory()) throw new Error('not a directory');
      accessSync(existing, constants.W_OK | constants.X_OK);
    } catch {
      return [fail(`socket directory ${dir} does not exist and cannot be created by ${whoAmI()} (${existing} is not a writable directory)`, `let systemd create it, ${unitFix}`)];
    }
    // The daemon creates it with mkdir's default mode through the umask, in its own group.
    const umask = process.umask();
    dirGid = process.getgid!();
    dirMode = 0o777 & ~umask;
    dirStat = undefined;
    results.push(ok(`socket directory ${dir} can be created (group ${groupName(dirGid)}, mode ${octal(dirMode)} with this umask)`));
  }

  // Group of the socket file once bound (a live socket shows its own).
  const live = statIfAny(path);
  const socketGid = live?.isSocket() ? live.gid : dirStat && dirMode & 0o2000 ? dirGid : process.getgid!();
  const socketMode = live?.isSocket() ? live.mode & 0o777 : mode;
  const viaGroup = socketGid === phpGid;
  const phpCanSearchDir = dirGid === phpGid ? (dirMode & 0o010) !== 0 : (dirMode & 0o001) !== 0;
  const phpCanWriteSocket = viaGroup ? (socketMode & 0o020) !== 0 : (socketMode & 0o002) !== 0;
  const socketText = `${live?.isSocket() ? 'socket' : 'the socket the daemon will create at'} ${path} (group ${groupName(socketGid)}, mode ${octal(socketMode)})`;
  if (!phpCanWriteSocket) {
    results.push(
      fail(
        `group ${phpGroup} cannot write to ${socketText}, so agent.php's sends would fail`,
        viaGroup ? 'set socket.mode to 0660' : `run the daemon in group ${phpGroup}, ${unitFix}, or make ${dir} setgid with group ${phpGroup}`,
      ),
    );
  } else if (!phpCanSearchDir) {
    results.push(fail(`group ${phpGroup} cannot enter ${dir} (group ${groupName(dirGid)}, mode ${octal(dirMode)}), so agent.php cannot reach the socket`, `chgrp ${phpGroup} ${dir} && chmod 0750 ${dir}, or ${unitFix.replace(/^as /, 'do as ')}`));
  } else {
    results.push(ok(`group ${phpGroup} can reach and write to ${socketText}`));
  }
  return results;
}

export async function checkPhpAgent(config: PhpAgentConfig, phpGroup: string): Promise<CheckResult[]> {
  return [
    ...checkSocket(config, phpGroup),
    checkBufferPath(config.buffer.path, 'StateDirectory=bitville/php-agent'),
    ...(await checkCollector(config.exporter, ['traces'])),
  ];
}
