// `lora-lab` dispatcher: global --help/--version, then the command table. Every error ends as a
// message on stderr and a non-zero exit code; stack traces only with LORA_LAB_DEBUG=1.
import { commands } from './commands';
import { CliError, EXIT, type CliCommand } from './command';
import { loraLabVersion } from '../runs/versions';
import { terminalSafe } from './terminalText';

function globalHelp(): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return [
    'lora-lab: train and inspect LoRA adapters on TensorFlow.js (the engine of the LoRA Lab VS Code extension).',
    '',
    'Usage: lora-lab <command> [options]',
    '',
    'Commands:',
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'Options:',
    '  --help, -h     show this help (or `lora-lab <command> --help`)',
    '  --version, -v  print the version',
    '',
    'Exit codes: 0 ok, 1 failed, 2 bad command line, 130 stopped by Ctrl-C.',
  ].join('\n');
}

/** Run the CLI with `argv` (without node and the script); resolves to the exit code. */
export async function runCli(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined || first === '--help' || first === '-h' || first === 'help') {
    const cmd = first === 'help' && rest[0] ? commands.find((c) => c.name === rest[0]) : undefined;
    process.stdout.write((cmd ? cmd.usage : globalHelp()) + '\n');
    return first === undefined ? EXIT.usage : EXIT.ok;
  }
  if (first === '--version' || first === '-v') {
    process.stdout.write(`lora-lab ${loraLabVersion()}\n`);
    return EXIT.ok;
  }
  const cmd: CliCommand | undefined = commands.find((c) => c.name === first);
  if (!cmd) {
    process.stderr.write(`lora-lab: unknown command "${terminalSafe(first)}". Commands: ${commands.map((c) => c.name).join(', ')}. See lora-lab --help.\n`);
    return EXIT.usage;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(cmd.usage + '\n');
    return EXIT.ok;
  }
  try {
    const code = await cmd.run(rest);
    return code ?? EXIT.ok;
  } catch (e) {
    if (CliError.is(e, 'usage')) {
      process.stderr.write(`lora-lab ${cmd.name}: ${terminalSafe(e.message)}\n\n${cmd.usage}\n`);
      return EXIT.usage;
    }
    const message = e instanceof Error ? e.message : String(e);
    // Messages quote file names, config values and tensor names: no control characters reach the terminal.
    process.stderr.write(`lora-lab ${cmd.name}: ${terminalSafe(message)}\n`);
    if (process.env.LORA_LAB_DEBUG && e instanceof Error && e.stack) process.stderr.write(e.stack + '\n');
    return CliError.is(e) ? e.exitCode : EXIT.failed;
  }
}
