#!/usr/bin/env node
'use strict';
/**
 * A schema-strict OCPP 1.6J / 2.0.1 test central system on ocpp-rpc
 * (independent of the Python `ocpp` library the agent uses). It serves the
 * subprotocols given by --protocols (most preferred first; default ocpp1.6),
 * validating every frame against that version's schemas.
 *
 * Every frame and event is one JSON line on stdout:
 *   {"dir":"listening","port":9000,"url":"ws://127.0.0.1:9000/ocpp"}
 *   {"dir":"in"|"out","station":"CP001","type":"call"|"callResult"|"callError"|"raw",
 *    "action":"StartTransaction","id":"<message id>","payload":{...}}
 *   {"dir":"error","kind":"strictValidation"|"badMessage"|"callError"|"subprotocol"|"command",
 *    "origin":"station"|"csms", ...}
 *   {"dir":"result","station":..,"action":..,"id":..,"payload":{...}} or with "error":{...}
 *   {"dir":"connect","station":..,"protocol":"ocpp2.0.1"}
 *   {"dir":"disconnect"|"rejected"|"stopped", ...}
 * Commands to stations come as JSON lines on stdin:
 *   {"station":"CP001","action":"RemoteStopTransaction","payload":{"transactionId":1},"id":"optional"}
 * Exits on SIGTERM, SIGINT or stdin EOF.
 *
 * Usage: node server.js [--port N|N] [--host H] [--password P] [--boot-interval S]
 *                       [--protocols ocpp2.0.1,ocpp1.6]
 *                       [--boot-status Accepted|Pending|Rejected] [--reject-tag T]...
 *                       [--reply 'Action={"json":"reply"}']... [--call-timeout-ms MS]
 * (port 0 picks a free one; the "listening" line tells which; --reject-tag applies to
 * idTag in 1.6 and to idToken.idToken in 2.0.1; --reply to stations of either version)
 * Environment: STRICT_CSMS_PORT, STRICT_CSMS_HOST, STRICT_CSMS_PASSWORD.
 */

const readline = require('node:readline');
const { RPCServer, createRPCError } = require('ocpp-rpc');

const PROTOCOLS = ['ocpp1.6', 'ocpp2.0.1']; // what this server has default replies for

function usageError(message) {
    process.stderr.write(`server.js: ${message}\n`);
    process.exit(2);
}

function parseArgs(argv, env) {
    const opts = {
        port: Number(env.STRICT_CSMS_PORT ?? 9000),
        host: env.STRICT_CSMS_HOST ?? '127.0.0.1',
        password: env.STRICT_CSMS_PASSWORD || undefined,
        bootInterval: 300,
        bootStatus: 'Accepted',
        rejectTags: new Set(),
        replies: new Map(),
        callTimeoutMs: 30000,
        protocols: ['ocpp1.6'],
    };
    for (let i = 0; i < argv.length; i++) {
        const arg = argv[i];
        const value = () => {
            if (i + 1 >= argv.length) usageError(`${arg} needs a value`);
            return argv[++i];
        };
        switch (arg) {
            case '--port': opts.port = Number(value()); break;
            case '--host': opts.host = value(); break;
            case '--password': opts.password = value(); break;
            case '--boot-interval': opts.bootInterval = Number(value()); break;
            case '--boot-status': opts.bootStatus = value(); break;
            case '--reject-tag': opts.rejectTags.add(value()); break;
            case '--call-timeout-ms': opts.callTimeoutMs = Number(value()); break;
            case '--protocols': {
                opts.protocols = value().split(',').map((p) => p.trim()).filter(Boolean);
                const unknown = opts.protocols.filter((p) => !PROTOCOLS.includes(p));
                if (unknown.length || !opts.protocols.length) {
                    usageError(`--protocols wants some of ${PROTOCOLS.join(',')}, got ${unknown.join(',') || 'none'}`);
                }
                break;
            }
            case '--reply': {
                const text = value();
                const eq = text.indexOf('=');
                if (eq < 1) usageError(`--reply wants Action=JSON, got ${text}`);
                try {
                    opts.replies.set(text.slice(0, eq), JSON.parse(text.slice(eq + 1)));
                } catch (err) {
                    usageError(`--reply ${text}: ${err.message}`);
                }
                break;
            }
            default:
                if (/^\d+$/.test(arg)) opts.port = Number(arg);
                else usageError(`unknown argument ${arg}`);
        }
    }
    if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) usageError('bad port');
    return opts;
}

function emit(line) {
    process.stdout.write(JSON.stringify({ t: new Date().toISOString(), ...line }) + '\n');
}

function errorInfo(err) {
    return {
        code: err?.rpcErrorCode ?? err?.name ?? 'Error',
        message: err?.message || err?.rpcErrorMessage || String(err),
        details: err?.details ?? {},
    };
}

/** Default replies to charger-initiated requests, per subprotocol; `state` holds the txn counter. */
function defaultReplies(opts, state) {
    const now = () => new Date().toISOString();
    const tagInfo = (idTag) => ({ status: opts.rejectTags.has(idTag) ? 'Invalid' : 'Accepted' });
    const tokenInfo = (idToken) => tagInfo(idToken?.idToken);
    const ocpp201 = {
        BootNotification: () => ({
            currentTime: now(),
            interval: opts.bootInterval,
            status: opts.bootStatus,
        }),
        Heartbeat: () => ({ currentTime: now() }),
        StatusNotification: () => ({}),
        Authorize: (p) => ({ idTokenInfo: tokenInfo(p.idToken) }),
        // idTokenInfo is required when the request carries an idToken.
        TransactionEvent: (p) => (p.idToken !== undefined ? { idTokenInfo: tokenInfo(p.idToken) } : {}),
        MeterValues: () => ({}),
        NotifyEvent: () => ({}),
        NotifyReport: () => ({}),
        NotifyMonitoringReport: () => ({}),
        NotifyChargingLimit: () => ({}),
        ClearedChargingLimit: () => ({}),
        NotifyCustomerInformation: () => ({}),
        NotifyDisplayMessages: () => ({}),
        NotifyEVChargingNeeds: () => ({ status: 'Rejected' }), // no schedules computed here
        NotifyEVChargingSchedule: () => ({ status: 'Accepted' }),
        ReportChargingProfiles: () => ({}),
        ReservationStatusUpdate: () => ({}),
        DataTransfer: () => ({ status: 'Accepted' }),
        FirmwareStatusNotification: () => ({}),
        PublishFirmwareStatusNotification: () => ({}),
        LogStatusNotification: () => ({}),
        SecurityEventNotification: () => ({}),
        SignCertificate: () => ({ status: 'Accepted' }),
        GetCertificateStatus: () => ({ status: 'Failed' }), // no OCSP responder here
        Get15118EVCertificate: () => ({ status: 'Failed', exiResponse: '' }), // no 15118 PKI here
    };
    const ocpp16 = {
        BootNotification: () => ({
            status: opts.bootStatus,
            currentTime: now(),
            interval: opts.bootInterval,
        }),
        Heartbeat: () => ({ currentTime: now() }),
        StatusNotification: () => ({}),
        Authorize: (p) => ({ idTagInfo: tagInfo(p.idTag) }),
        StartTransaction: (p) => ({ transactionId: ++state.lastTransactionId, idTagInfo: tagInfo(p.idTag) }),
        StopTransaction: (p) => (p.idTag !== undefined ? { idTagInfo: tagInfo(p.idTag) } : {}),
        MeterValues: () => ({}),
        DataTransfer: () => ({ status: 'Accepted' }),
        DiagnosticsStatusNotification: () => ({}),
        FirmwareStatusNotification: () => ({}),
        SecurityEventNotification: () => ({}),
        LogStatusNotification: () => ({}),
        SignedFirmwareStatusNotification: () => ({}),
        SignCertificate: () => ({ status: 'Accepted' }),
    };
    return { 'ocpp1.6': ocpp16, 'ocpp2.0.1': ocpp201 };
}

/** Log every frame of one connection, naming results and errors by their call's action. */
function attachFrameLog(client) {
    const station = client.identity;
    const callsFrom = { station: new Map(), csms: new Map() }; // message id → action
    client.on('message', ({ message, outbound }) => {
        const text = Buffer.isBuffer(message) ? message.toString('utf8') : String(message);
        const dir = outbound ? 'out' : 'in';
        let frame;
        try {
            frame = JSON.parse(text);
        } catch {
            frame = undefined;
        }
        if (!Array.isArray(frame) || typeof frame[1] !== 'string') {
            emit({ dir, station, type: 'raw', raw: text });
            return;
        }
        const [kind, id] = frame;
        if (kind === 2) {
            (outbound ? callsFrom.csms : callsFrom.station).set(id, frame[2]);
            emit({ dir, station, type: 'call', action: frame[2], id, payload: frame[3] });
            return;
        }
        const calls = outbound ? callsFrom.station : callsFrom.csms;
        const action = calls.get(id) ?? null;
        calls.delete(id);
        if (kind === 3) {
            emit({ dir, station, type: 'callResult', action, id, payload: frame[2] });
        } else if (kind === 4) {
            const payload = { errorCode: frame[2], errorDescription: frame[3], errorDetails: frame[4] };
            emit({ dir, station, type: 'callError', action, id, payload });
            if (!outbound) {
                emit({ dir: 'error', kind: 'callError', origin: 'station', station, action, id, ...payload });
            }
        } else {
            emit({ dir, station, type: 'raw', raw: text });
        }
    });
    client.on('strictValidationFailure', (ev) => {
        // outbound: the invalid message is ours (a command or a reply); else the station's.
        emit({
            dir: 'error',
            kind: 'strictValidation',
            origin: ev.outbound ? 'csms' : 'station',
            station,
            action: ev.method,
            id: ev.messageId,
            message: ev.isCall ? 'call' : 'callResult',
            error: ev.error?.message,
            code: ev.error?.rpcErrorCode,
            errors: ev.error?.details?.errors,
            payload: ev.isCall ? ev.params : ev.result,
        });
    });
    client.on('badMessage', ({ buffer, error, response }) => {
        emit({
            dir: 'error',
            kind: 'badMessage',
            origin: 'station',
            station,
            raw: Buffer.isBuffer(buffer) ? buffer.toString('utf8') : String(buffer),
            error: error?.message,
            code: error?.rpcErrorCode,
            response,
        });
    });
}

async function main() {
    const opts = parseArgs(process.argv.slice(2), process.env);
    const state = { lastTransactionId: 0 };
    const replies = defaultReplies(opts, state);
    const stations = new Map(); // identity → RPCServerClient (the latest connection)

    const server = new RPCServer({
        protocols: opts.protocols,
        strictMode: true,
        callTimeoutMs: opts.callTimeoutMs,
    });

    server.auth((accept, reject, handshake) => {
        const station = handshake.identity;
        if (opts.password !== undefined) {
            // handshake.password is set only when the Basic username equals the identity.
            const given = handshake.password;
            if (!given || !given.equals(Buffer.from(opts.password, 'utf8'))) {
                const reason = given ? 'wrong password' : 'no credentials for this identity';
                emit({ dir: 'rejected', station, status: 401, reason });
                reject(401, 'Unauthorized');
                return;
            }
        }
        if (!opts.protocols.some((p) => handshake.protocols.has(p))) {
            // OCPP-J 1.6 / 2.0.1: complete the handshake without a subprotocol, then close.
            accept({ noSubprotocol: true }, false);
            return;
        }
        accept({});
    });

    server.on('client', (client) => {
        const station = client.identity;
        if (client.session?.noSubprotocol) {
            const wanted = opts.protocols.join(' or ');
            const error = `station did not offer ${wanted}`;
            emit({ dir: 'error', kind: 'subprotocol', origin: 'station', station, error });
            client.close({ code: 1002, reason: `subprotocol ${wanted} required` });
            return;
        }
        stations.set(station, client);
        emit({ dir: 'connect', station, protocol: client.protocol });
        attachFrameLog(client);
        client.on('close', ({ code, reason }) => {
            if (stations.get(station) === client) stations.delete(station);
            emit({ dir: 'disconnect', station, code, reason: String(reason ?? '') });
        });
        for (const [action, reply] of Object.entries(replies[client.protocol])) {
            client.handle(action, ({ params }) => reply(params ?? {}));
        }
        for (const [action, reply] of opts.replies) {
            client.handle(action, () => reply); // --reply overrides the default
        }
        // Anything else is still schema-checked (strict mode validates before any handler).
        client.handle(({ method }) => {
            throw createRPCError('NotImplemented', `${method} is not handled by this test central system`);
        });
    });

    server.on('upgradeAborted', ({ identity, error }) => {
        if (error?.code !== 401) {
            emit({ dir: 'rejected', station: identity, status: error?.code, reason: error?.message });
        }
    });

    async function command(line) {
        let cmd;
        try {
            cmd = JSON.parse(line);
            if (typeof cmd?.station !== 'string' || typeof cmd?.action !== 'string') {
                throw new Error('want {"station": "...", "action": "...", "payload": {...}}');
            }
        } catch (err) {
            emit({ dir: 'error', kind: 'command', origin: 'csms', error: err.message, line });
            return;
        }
        const { station, action, id } = cmd;
        const client = stations.get(station);
        if (!client) {
            const error = { code: 'NotConnected', message: `${station} is not connected`, details: {} };
            emit({ dir: 'result', station, action, id, error });
            return;
        }
        try {
            const payload = await client.call(action, cmd.payload ?? {});
            emit({ dir: 'result', station, action, id, payload });
        } catch (err) {
            emit({ dir: 'result', station, action, id, error: errorInfo(err) });
        }
    }

    let stopping = false;
    async function stop(why) {
        if (stopping) return;
        stopping = true;
        const timer = setTimeout(() => process.exit(0), 3000);
        try {
            await server.close({ code: 1001, reason: 'central system stopping' });
        } catch (err) {
            process.stderr.write(`close failed: ${err.message}\n`);
        }
        clearTimeout(timer);
        emit({ dir: 'stopped', reason: why });
        process.exit(0);
    }

    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));

    const httpServer = await server.listen(opts.port, opts.host);
    const { port } = httpServer.address();
    const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
    emit({ dir: 'listening', host: opts.host, port, url: `ws://${host}:${port}/ocpp` });

    const input = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
    input.on('line', (line) => {
        if (line.trim()) command(line.trim());
    });
    input.on('close', () => stop('stdin closed'));
}

main().catch((err) => {
    process.stderr.write(`${err.stack ?? err}\n`);
    process.exit(1);
});
