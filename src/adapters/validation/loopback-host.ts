/**
 * Whether a URL's hostname (`new URL(...).hostname`: an IPv6 address in brackets) names this machine's loopback:
 * `localhost`, an address of 127.0.0.0/8, or `::1`. Traffic to it never leaves the machine, so plain http there
 * exposes nothing on a network. A name that merely starts so (`127.0.0.1.example.org`, `localhost.example.org`) is
 * not loopback.
 */
export const isLoopbackHost = (hostname: string): boolean => {
  const host = hostname.startsWith('[') && hostname.endsWith(']') ? hostname.slice(1, -1) : hostname;
  if (host === 'localhost' || host === '::1') return true;
  const octets = host.split('.');
  return octets.length === 4 && octets[0] === '127' && octets.every((o) => /^\d{1,3}$/.test(o) && Number(o) <= 255);
};
