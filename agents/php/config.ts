// The php-agent daemon's config: the shared runtime keys plus the socket.
import { z } from 'zod';
import { loadAgentConfig, runtimeConfigShape } from '../runtime/index.js';

export const phpAgentConfigSchema = z.strictObject({
  ...runtimeConfigShape({ bufferPath: '/var/lib/bitville/php-agent/buffer.db', metricsAddress: '127.0.0.1:9464' }),
  socket: z
    .strictObject({
      /** Where agent.php sends its datagrams; the directory is created. */
      path: z.string().min(1).default('/run/bitville/php-agent.sock'),
      /** File mode of the socket, octal: PHP's user must be able to write to it. */
      mode: z
        .string()
        .regex(/^0?[0-7]{3}$/, 'an octal file mode like 0660')
        .default('0660')
        .transform((text) => parseInt(text, 8)),
    })
    .prefault({}),
});

export type PhpAgentConfig = z.output<typeof phpAgentConfigSchema>;

export function loadPhpAgentConfig(file: string): Readonly<PhpAgentConfig> {
  return loadAgentConfig(file, phpAgentConfigSchema);
}
