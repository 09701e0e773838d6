// HTTP endpoint for Prometheus and orchestrators. Owns: serving `/metrics` (the registry text of
// createMetrics()), `/healthz` (the process is alive) and `/readyz` (the caller's readiness predicate).
// Must not touch: metric names (src/metrics/metrics.ts), stages, Kafka. It only reads a Registry and
// calls the readiness predicate it is given; every stage wires its own predicate in src/cli.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { ConfigError, TkgError } from '../core/errors.ts';

/** Answer of a readiness predicate: ready, or not ready with a human-readable reason. */
export type Readiness = { ready: true } | { ready: false; reason: string };

/** Called on every GET /readyz; may be async. A thrown error counts as "not ready" (the message is the reason). */
export type ReadinessPredicate = () => Readiness | Promise<Readiness>;

export interface MetricsServerOptions {
  /** The registry to expose (createMetrics().registry). */
  registry: Registry;
  /** TCP port; 0 picks a free port (read it from `port` / `url` after start()). Default 0. */
  port?: number;
  /** Interface to bind. Default '0.0.0.0' (reachable from a Prometheus container); tests use '127.0.0.1'. */
  host?: string;
  /** Readiness predicate for /readyz. Default: always ready. */
  readiness?: ReadinessPredicate;
}

/** Readiness that is always true (a stage with nothing to wait for). */
export const alwaysReady: ReadinessPredicate = () => ({ ready: true });

/**
 * Readiness from named boolean checks, e.g. `{ modelLoaded: () => scorer.hasModel(), consumerJoined: () => joined }`.
 * Ready when every check returns true; otherwise the reason lists the failing checks in the given order.
 */
export function readinessFromChecks(
  checks: Record<string, () => boolean | Promise<boolean>>,
): ReadinessPredicate {
  return async () => {
    const failing: string[] = [];
    for (const [name, check] of Object.entries(checks)) {
      if (!(await check())) failing.push(name);
    }
    return failing.length === 0
      ? { ready: true }
      : { ready: false, reason: `waiting for: ${failing.join(', ')}` };
  };
}

/**
 * Small node:http server: GET|HEAD /metrics, /healthz, /readyz. Lifecycle: start() once, stop() once.
 * Responses: /metrics 200 text (Prometheus exposition format) or 500 if collecting fails;
 * /healthz 200 {"status":"ok"}; /readyz 200 {"ready":true} or 503 {"ready":false,"reason":"..."};
 * unknown paths 404, other methods 405.
 */
export class MetricsServer {
  private readonly registry: Registry;
  private readonly requestedPort: number;
  private readonly host: string;
  private readonly readiness: ReadinessPredicate;
  private server: Server | undefined;
  private boundPort: number | undefined;

  constructor(options: MetricsServerOptions) {
    const port = options.port ?? 0;
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      throw new ConfigError(
        `metrics port ${JSON.stringify(port)} is not a TCP port; use 0..65535 (TKG_METRICS_PORT)`,
      );
    }
    this.registry = options.registry;
    this.requestedPort = port;
    this.host = options.host ?? '0.0.0.0';
    this.readiness = options.readiness ?? alwaysReady;
  }

  /** The bound port (after start()). */
  get port(): number {
    if (this.boundPort === undefined) {
      throw new TkgError('MetricsServer.port read before start(); await start() first', {
        reason: 'not_started',
      });
    }
    return this.boundPort;
  }

  /** Base URL reachable from this host, e.g. http://127.0.0.1:9464 (0.0.0.0 is reported as 127.0.0.1). */
  get url(): string {
    const host = this.host === '0.0.0.0' || this.host === '::' ? '127.0.0.1' : this.host;
    return `http://${host.includes(':') ? `[${host}]` : host}:${this.port}`;
  }

  /** Bind and listen. Rejects with a TkgError (reason 'port_in_use') naming the port when it is taken. */
  async start(): Promise<{ port: number; url: string }> {
    if (this.server)
      throw new TkgError('MetricsServer.start() called twice; create a new server instead', {
        reason: 'already_started',
      });
    const server = createServer((request, response) => {
      this.handle(request, response).catch((error: unknown) => {
        // handle() answers every request itself; this is the last guard against a crashed socket.
        if (!response.headersSent) sendJson(response, 500, { error: messageOf(error) });
        else response.destroy();
      });
    });
    server.keepAliveTimeout = 5_000;
    await new Promise<void>((resolve, reject) => {
      const onError = (error: NodeJS.ErrnoException) => {
        server.off('listening', onListening);
        if (error.code === 'EADDRINUSE') {
          reject(
            new TkgError(
              `metrics port ${this.requestedPort} on ${this.host} is already in use; set TKG_METRICS_PORT to a free port or 0 for any free port`,
              { reason: 'port_in_use', retriable: true, cause: error },
            ),
          );
        } else {
          reject(
            new TkgError(
              `metrics server could not listen on ${this.host}:${this.requestedPort}: ${error.message}`,
              { reason: 'listen_failed', cause: error },
            ),
          );
        }
      };
      const onListening = () => {
        server.off('error', onError);
        resolve();
      };
      server.once('error', onError);
      server.once('listening', onListening);
      server.listen(this.requestedPort, this.host);
    });
    this.server = server;
    this.boundPort = (server.address() as AddressInfo).port;
    return { port: this.boundPort, url: this.url };
  }

  /** Stop listening and close open (keep-alive) connections. Safe to call when not started. */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    await new Promise<void>((resolve, reject) => {
      server.close((error) => (error ? reject(error) : resolve()));
      server.closeAllConnections();
    });
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const path = (request.url ?? '/').split('?')[0];
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.setHeader('Allow', 'GET, HEAD');
      sendJson(response, 405, { error: `method ${request.method} not allowed; use GET` });
      return;
    }
    switch (path) {
      case '/metrics': {
        let body: string;
        try {
          body = await this.registry.metrics();
        } catch (error) {
          sendJson(response, 500, { error: `collecting metrics failed: ${messageOf(error)}` });
          return;
        }
        response.writeHead(200, { 'Content-Type': this.registry.contentType });
        response.end(request.method === 'HEAD' ? undefined : body);
        return;
      }
      case '/healthz':
        sendJson(response, 200, { status: 'ok' });
        return;
      case '/readyz': {
        let readiness: Readiness;
        try {
          readiness = await this.readiness();
        } catch (error) {
          readiness = { ready: false, reason: `readiness check failed: ${messageOf(error)}` };
        }
        sendJson(response, readiness.ready ? 200 : 503, readiness);
        return;
      }
      case '/':
        sendJson(response, 200, { endpoints: ['/metrics', '/healthz', '/readyz'] });
        return;
      default:
        sendJson(response, 404, {
          error: `no such path ${path}; try /metrics, /healthz or /readyz`,
        });
    }
  }
}

function sendJson(response: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  response.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Cache-Control': 'no-store',
  });
  response.end(text);
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
