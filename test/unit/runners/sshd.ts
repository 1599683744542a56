// A real OpenSSH server for the runner tests: Debian's sshd on 127.0.0.1 on a free port, with a
// temporary host key, a temporary client key in authorized_keys and its own config (nothing of the
// machine's ssh setup is read or changed).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import type { SshTarget } from '../../../src/runners/sshRunner';

export const SSHD = '/usr/sbin/sshd';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

function keygen(file: string): void {
  const r = spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', file], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ssh-keygen: ${r.stderr}`);
}

async function waitForPort(port: number, ms: number): Promise<void> {
  const until = Date.now() + ms;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`sshd did not listen on ${port} within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export class TestSshd {
  private proc: ChildProcess | undefined;
  private log = '';
  private constructor(
    readonly dir: string,
    readonly port: number,
    readonly target: SshTarget,
    private readonly config: string,
  ) {}

  static async start(): Promise<TestSshd> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-sshd-'));
    keygen(path.join(dir, 'host_key'));
    keygen(path.join(dir, 'client_key'));
    keygen(path.join(dir, 'other_key'));
    fs.copyFileSync(path.join(dir, 'client_key.pub'), path.join(dir, 'authorized_keys'));
    fs.chmodSync(path.join(dir, 'authorized_keys'), 0o600);
    // sshd refuses to start as root without its privilege-separation folder.
    if (process.getuid?.() === 0) fs.mkdirSync('/run/sshd', { recursive: true });
    const port = await freePort();
    const config = path.join(dir, 'sshd_config');
    fs.writeFileSync(
      config,
      [
        `Port ${port}`,
        'ListenAddress 127.0.0.1',
        `HostKey ${path.join(dir, 'host_key')}`,
        `AuthorizedKeysFile ${path.join(dir, 'authorized_keys')}`,
        `PidFile ${path.join(dir, 'sshd.pid')}`,
        'StrictModes no',
        'UsePAM no',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'PubkeyAuthentication yes',
        'PermitRootLogin prohibit-password',
        'LogLevel ERROR',
        '',
      ].join('\n'),
    );
    const target: SshTarget = {
      host: '127.0.0.1',
      port,
      user: os.userInfo().username,
      identityFile: path.join(dir, 'client_key'),
      options: ['StrictHostKeyChecking=no', 'UserKnownHostsFile=/dev/null', 'LogLevel=ERROR'],
    };
    const d = new TestSshd(dir, port, target, config);
    await d.up();
    return d;
  }

  /** (Re)starts the server on the same port with the same keys. */
  async up(): Promise<void> {
    const p = spawn(SSHD, ['-D', '-e', '-f', this.config], { stdio: ['ignore', 'ignore', 'pipe'] });
    p.stderr!.on('data', (b: Buffer) => (this.log += b.toString()));
    this.proc = p;
    await waitForPort(this.port, 10_000).catch((e: Error) => {
      throw new Error(`${e.message}\n${this.log}`);
    });
  }

  /** Kills the server: open connections drop, new ones are refused. */
  async down(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null) return;
    const gone = new Promise((r) => p.once('exit', r));
    p.kill('SIGTERM');
    await gone;
    this.proc = undefined;
  }

  async dispose(): Promise<void> {
    await this.down();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
