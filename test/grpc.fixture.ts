// Raw unary gRPC calls with bytes in and bytes out, as grpcurl would make them: no generated
// client, so a test can send any body (malformed ones included) and read the status details.
import * as grpc from '@grpc/grpc-js';
import { google } from '../proto/generated/otlp.js';

export function grpcCall(
  address: string,
  path: string,
  body: Buffer,
  metadata: Record<string, string>,
  credentials = grpc.credentials.createInsecure(),
  options: grpc.ChannelOptions = {},
): Promise<Buffer> {
  const client = new grpc.Client(address, credentials, options);
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(metadata)) md.set(k, v);
  return new Promise<Buffer>((resolve, reject) => {
    client.makeUnaryRequest(
      path,
      (b: Buffer) => b,
      (b: Buffer) => b,
      body,
      md,
      { deadline: Date.now() + 15_000 },
      (err, reply) => {
        client.close();
        if (err) reject(err);
        else resolve(reply!);
      },
    );
  });
}

/** The call's error; fails when the call succeeds. */
export async function grpcError(address: string, path: string, body: Buffer, metadata: Record<string, string>, options: grpc.ChannelOptions = {}): Promise<grpc.ServiceError> {
  try {
    await grpcCall(address, path, body, metadata, undefined, options);
  } catch (err) {
    return err as grpc.ServiceError;
  }
  throw new Error(`the call to ${path} succeeded`);
}

/** The RetryInfo delay in the error's google.rpc.Status details, in ms, or undefined. */
export function retryDelayMs(err: grpc.ServiceError): number | undefined {
  const bytes = err.metadata?.get('grpc-status-details-bin')[0];
  if (!Buffer.isBuffer(bytes)) return undefined;
  const status = google.rpc.Status.decode(bytes);
  const retry = status.details.find((d) => d.typeUrl === 'type.googleapis.com/google.rpc.RetryInfo');
  if (!retry) return undefined;
  const delay = google.rpc.RetryInfo.decode(retry.value!).retryDelay;
  return Number(delay?.seconds ?? 0) * 1000 + Math.round((delay?.nanos ?? 0) / 1e6);
}
