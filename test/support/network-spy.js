// Preloaded into a hub process (NODE_OPTIONS=--require): every listening socket, UDP bind, outgoing connection and
// DNS lookup the process makes, one JSON line each, appended to $NETWORK_SPY_FILE. Plain JavaScript, so that it
// loads before anything else, in the built program. Records only addresses and ports, never data.
'use strict';
const { appendFileSync } = require('node:fs');
const net = require('node:net');
const dgram = require('node:dgram');
const dns = require('node:dns');

const file = process.env.NETWORK_SPY_FILE;
if (!file) throw new Error('network-spy: NETWORK_SPY_FILE is not set');
const record = (entry) => appendFileSync(file, `${JSON.stringify({ pid: process.pid, ...entry })}\n`);

const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  this.once('listening', () => {
    const address = this.address();
    record(typeof address === 'string' ? { kind: 'listen', path: address } : { kind: 'listen', address: address.address, port: address.port });
  });
  return listen.apply(this, args);
};

const bind = dgram.Socket.prototype.bind;
dgram.Socket.prototype.bind = function (...args) {
  record({ kind: 'udp-bind', args: args.filter((a) => typeof a !== 'function') });
  return bind.apply(this, args);
};

const connect = net.Socket.prototype.connect;
net.Socket.prototype.connect = function (...args) {
  const [first, second] = Array.isArray(args[0]) ? args[0] : args;
  const to = typeof first === 'object' && first !== null ? { host: first.host, port: first.port, path: first.path } : typeof first === 'string' && !/^\d+$/.test(first) ? { path: first } : { host: second, port: first };
  record({ kind: 'connect', ...to });
  return connect.apply(this, args);
};

const lookup = dns.lookup;
dns.lookup = function (hostname, ...rest) {
  record({ kind: 'dns', hostname });
  return lookup.call(this, hostname, ...rest);
};
const promisesLookup = dns.promises.lookup;
dns.promises.lookup = function (hostname, ...rest) {
  record({ kind: 'dns', hostname });
  return promisesLookup.call(this, hostname, ...rest);
};
