import { z } from 'zod';

/**
 * How the HTTP surface listens, beyond listen_address and port: HTTPS served by the process
 * itself (Flower's certfile, keyfile, ca_certs) and a unix socket (Flower's unix_socket).
 */
export const listenerKeys = {
  tls: z
    .object({
      cert_file: z.string().min(1).optional().describe('Server certificate (PEM), with key_file.'),
      key_file: z.string().min(1).optional().describe("The server certificate's private key (PEM)."),
      client_ca_file: z.string().min(1).optional().describe("CA that must have signed every client's certificate (mutual TLS)."),
    })
    .strict()
    .refine((t) => (t.cert_file === undefined) === (t.key_file === undefined), 'cert_file and key_file go together')
    .refine((t) => t.client_ca_file === undefined || t.cert_file !== undefined, 'client_ca_file needs cert_file and key_file')
    .prefault({})
    .describe(
      'Serve HTTPS directly: PEM files, read at start, checked by --check-config and read again on SIGHUP (open connections keep going). With client_ca_file, every client must present a certificate that CA signed (mutual TLS), probes and Prometheus included.',
    ),
  unix_socket: z
    .string()
    .min(1)
    // sockaddr_un holds 108 bytes with the terminating NUL.
    .max(107)
    .optional()
    .describe("Listen on this unix socket instead of listen_address:port (Flower's unix_socket)."),
  unix_socket_mode: z
    .string({ error: 'an octal mode written as a string, e.g. "0660"' })
    .regex(/^0?[0-7]{3}$/, 'an octal mode such as "0600" or "0660"')
    .default('0600')
    .transform((s) => parseInt(s, 8))
    .describe('The socket file\'s permissions, octal, as a string: "0600" only this user may connect, "0660" its group too (a proxy\'s).'),
};
