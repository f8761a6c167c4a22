import { describe, expect, it } from 'vitest';
import { ApiClient, type FetchLike } from '../../src/lib/api';
import {
  band,
  configurable,
  expire,
  formFrom,
  inSubnet,
  ipFormProblems,
  ipPatch,
  isNetworkOrBroadcast,
  isUnavailable,
  needsPassword,
  parseCidr,
  parseIpv4,
  parseIpv6,
  reachable,
  secondsLeft,
  sortNetworks,
  splitList,
  startApply,
  wifiPasswordValid,
  type IpForm,
} from '../../src/lib/network';
import type { Interface, WifiNetwork } from '../../src/lib/types';

const manual = (addresses: string, gateway = '', dns = ''): IpForm => ({ method: 'manual', addresses, gateway, dns });

describe('IPv4 and IPv6 addresses', () => {
  it('parses dotted quads and refuses near misses', () => {
    expect(parseIpv4('192.168.1.5')).toEqual([192, 168, 1, 5]);
    expect(parseIpv4('0.0.0.0')).toEqual([0, 0, 0, 0]);
    for (const bad of ['256.1.1.1', '1.2.3', '1.2.3.4.5', '01.2.3.4', '1.2.3.-4', '1.2.3.4 ', 'a.b.c.d', '']) {
      expect(parseIpv4(bad), bad).toBeNull();
    }
  });

  it('parses IPv6 with "::" and a dotted-quad tail', () => {
    expect(parseIpv6('::1')).toEqual([...new Array(15).fill(0), 1]);
    expect(parseIpv6('::')).toEqual(new Array(16).fill(0));
    expect(parseIpv6('fd00::5')?.slice(0, 2)).toEqual([0xfd, 0]);
    expect(parseIpv6('2001:db8:0:0:0:0:0:1')).toEqual(parseIpv6('2001:db8::1'));
    expect(parseIpv6('::ffff:192.168.1.5')?.slice(10)).toEqual([0xff, 0xff, 192, 168, 1, 5]);
    expect(parseIpv6('fe80::')?.[0]).toBe(0xfe);
    for (const bad of ['1::2::3', '12345::', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7', 'g::1', '1.2.3.4::', '::1%eth0', ':1', '1:2:3:4:5:6:7::8']) {
      expect(parseIpv6(bad), bad).toBeNull();
    }
  });

  it('parses CIDR notation within the family', () => {
    expect(parseCidr('192.168.1.5/24', 4)).toEqual({ address: [192, 168, 1, 5], prefix: 24 });
    expect(parseCidr(' 10.0.0.1/8 ', 4)?.prefix).toBe(8);
    expect(parseCidr('fd00::5/64', 6)?.prefix).toBe(64);
    for (const [bad, family] of [
      ['192.168.1.5', 4],
      ['192.168.1.5/33', 4],
      ['192.168.1.5/024', 4],
      ['192.168.1.5/', 4],
      ['fd00::5/129', 6],
      ['fd00::5/64', 4],
      ['192.168.1.5/24', 6],
    ] as const) {
      expect(parseCidr(bad, family), bad).toBeNull();
    }
  });

  it('tells whether an address lies in a subnet, to the bit', () => {
    const net = parseCidr('192.168.1.5/24', 4)!;
    expect(inSubnet([192, 168, 1, 1], net)).toBe(true);
    expect(inSubnet([192, 168, 2, 1], net)).toBe(false);
    const narrow = parseCidr('10.0.0.9/29', 4)!;
    expect(inSubnet([10, 0, 0, 14], narrow)).toBe(true);
    expect(inSubnet([10, 0, 0, 16], narrow)).toBe(false);
    expect(inSubnet(parseIpv6('fd00::1')!, parseCidr('fd00::5/64', 6)!)).toBe(true);
    expect(inSubnet(parseIpv6('fd01::1')!, parseCidr('fd00::5/64', 6)!)).toBe(false);
    expect(inSubnet([10, 0, 0, 1], parseCidr('fd00::5/64', 6)!)).toBe(false);
  });

  it('recognises network and broadcast addresses, except on /31 and /32', () => {
    expect(isNetworkOrBroadcast(parseCidr('192.168.1.0/24', 4)!)).toBe(true);
    expect(isNetworkOrBroadcast(parseCidr('192.168.1.255/24', 4)!)).toBe(true);
    expect(isNetworkOrBroadcast(parseCidr('10.0.0.15/29', 4)!)).toBe(true);
    expect(isNetworkOrBroadcast(parseCidr('192.168.1.5/24', 4)!)).toBe(false);
    expect(isNetworkOrBroadcast(parseCidr('10.0.0.0/31', 4)!)).toBe(false);
    expect(isNetworkOrBroadcast(parseCidr('fd00::/64', 6)!)).toBe(false);
  });

  it('splits DNS lists on commas, spaces and new lines', () => {
    expect(splitList(' 1.1.1.1, 9.9.9.9\n2606:4700::1111 ;; ')).toEqual(['1.1.1.1', '9.9.9.9', '2606:4700::1111']);
    expect(splitList('')).toEqual([]);
  });
});

describe('the address form', () => {
  it('accepts a good static configuration', () => {
    expect(ipFormProblems(manual('192.168.1.20/24', '192.168.1.1', '1.1.1.1, 2606:4700::1111'), 4)).toEqual({});
    expect(ipFormProblems(manual('fd00::20/64', 'fd00::1'), 6)).toEqual({});
    expect(ipFormProblems(manual('192.168.1.20/24'), 4)).toEqual({}); // no gateway: a local-only network
  });

  it('names each problem', () => {
    expect(ipFormProblems(manual(''), 4).addresses).toBe('network.need_address');
    expect(ipFormProblems(manual('192.168.1.20'), 4).addresses).toBe('network.bad_cidr4');
    expect(ipFormProblems(manual('fd00::20'), 6).addresses).toBe('network.bad_cidr6');
    expect(ipFormProblems(manual('192.168.1.0/24'), 4).addresses).toBe('network.network_address');
    expect(ipFormProblems(manual('192.168.1.20/24', '10.0.0.1'), 4).gateway).toBe('network.gateway_outside');
    expect(ipFormProblems(manual('192.168.1.20/24', '192.168.1.20'), 4).gateway).toBe('network.gateway_is_self');
    expect(ipFormProblems(manual('192.168.1.20/24', '192.168.1'), 4).gateway).toBe('network.bad_ip4');
    expect(ipFormProblems(manual('fd00::20/64', 'fd00::zz'), 6).gateway).toBe('network.bad_ip6');
    expect(ipFormProblems(manual('192.168.1.20/24', '', '1.1.1.1, dns.example'), 4).dns).toBe('network.bad_dns');
  });

  it('accepts a gateway in the subnet of any of several addresses', () => {
    expect(ipFormProblems(manual('192.168.1.20/24\n10.0.0.2/8', '10.1.2.3'), 4)).toEqual({});
  });

  it('checks only the DNS list with DHCP, and sends no addresses', () => {
    const auto: IpForm = { method: 'auto', addresses: 'garbage', gateway: 'garbage', dns: '' };
    expect(ipFormProblems(auto, 4)).toEqual({});
    expect(ipPatch(auto)).toEqual({ method: 'auto', dns: [] });
    expect(ipFormProblems({ ...auto, dns: 'nope' }, 4).dns).toBe('network.bad_dns');
  });

  it('builds the patch for a static configuration', () => {
    expect(ipPatch(manual('192.168.1.20/24 192.168.1.21/24', ' 192.168.1.1 ', '1.1.1.1'))).toEqual({
      method: 'manual',
      addresses: ['192.168.1.20/24', '192.168.1.21/24'],
      gateway: '192.168.1.1',
      dns: ['1.1.1.1'],
    });
    expect(ipPatch(manual('192.168.1.20/24')).gateway).toBeNull();
  });

  it('fills the form from the interface, with "disabled" shown as DHCP', () => {
    expect(formFrom({ method: 'manual', addresses: ['10.0.0.2/8'], gateway: '10.0.0.1', dns: ['1.1.1.1', '9.9.9.9'] })).toEqual(
      manual('10.0.0.2/8', '10.0.0.1', '1.1.1.1, 9.9.9.9'),
    );
    expect(formFrom({ method: 'disabled', addresses: [], gateway: null, dns: [] }).method).toBe('auto');
  });

  it('offers the form for managed cable and Wi-Fi interfaces only', () => {
    const iface = (kind: Interface['kind'], state: Interface['state']) =>
      ({ name: 'x', kind, state, ipv4: formFrom, ipv6: formFrom }) as unknown as Interface;
    expect(configurable(iface('ethernet', 'connected'))).toBe(true);
    expect(configurable(iface('wifi', 'disconnected'))).toBe(true);
    expect(configurable(iface('ethernet', 'unmanaged'))).toBe(false);
    expect(configurable(iface('loopback', 'connected'))).toBe(false);
    expect(configurable(iface('bridge', 'connected'))).toBe(false);
  });
});

describe('safe apply countdown', () => {
  it('counts whole seconds down to zero, rounding up', () => {
    expect(secondsLeft(60_000, 0)).toBe(60);
    expect(secondsLeft(60_000, 500)).toBe(60);
    expect(secondsLeft(60_000, 59_001)).toBe(1);
    expect(secondsLeft(60_000, 60_000)).toBe(0);
    expect(secondsLeft(60_000, 90_000)).toBe(0);
  });

  it('waits until the deadline, then counts as reverted by the device', () => {
    const phase = startApply({ checkpoint: 'cp1', rollback_seconds: 60 }, 1_000);
    expect(phase).toEqual({ kind: 'waiting', checkpoint: 'cp1', deadlineMs: 61_000 });
    expect(expire(phase, 60_999)).toBe(phase);
    expect(expire(phase, 61_000)).toEqual({ kind: 'reverted', byUser: false });
    expect(expire({ kind: 'confirmed' }, 1e12)).toEqual({ kind: 'confirmed' });
  });

  it('treats a device that answers /api/health as reachable, and silence as not', async () => {
    expect(await reachable((async () => new Response('{}', { status: 200 })) as typeof fetch)).toBe(true);
    expect(await reachable((async () => new Response('', { status: 502 })) as typeof fetch)).toBe(false);
    expect(
      await reachable((async () => {
        throw new TypeError('Failed to fetch');
      }) as typeof fetch),
    ).toBe(false);
  });
});

describe('the network API', () => {
  function client(status: number, body: unknown = {}) {
    const calls: { url: string; method: string; body: unknown }[] = [];
    const fetch: FetchLike = async (url, init) => {
      calls.push({ url, method: init?.method ?? 'GET', body: init?.body ? JSON.parse(String(init.body)) : undefined });
      return new Response(status === 204 ? null : JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } });
    };
    return { net: new ApiClient({ fetch }), calls };
  }

  it('sends the contract paths and bodies', async () => {
    const { net, calls } = client(202, { checkpoint: 'abc', rollback_seconds: 60 });
    expect(await net.configureInterface('eth 0', { ipv4: { method: 'auto' } })).toEqual({ checkpoint: 'abc', rollback_seconds: 60 });
    await net.confirmNetworkChange('abc');
    await net.rollbackNetworkChange('abc');
    await net.wifiConnect('Home', 'secret123');
    await net.wifiConnect('Cafe');
    await net.wifiForget('Home/5G');
    await net.wifiScan();
    expect(calls.map((c) => `${c.method} ${c.url}`)).toEqual([
      'PATCH /api/v1/network/interfaces/eth%200',
      'POST /api/v1/network/checkpoints/abc/confirm',
      'POST /api/v1/network/checkpoints/abc/rollback',
      'POST /api/v1/network/wifi/connect',
      'POST /api/v1/network/wifi/connect',
      'DELETE /api/v1/network/wifi/Home%2F5G',
      'POST /api/v1/network/wifi/scan',
    ]);
    expect(calls[0].body).toEqual({ ipv4: { method: 'auto' } });
    expect(calls[3].body).toEqual({ ssid: 'Home', password: 'secret123' });
    expect(calls[4].body).toEqual({ ssid: 'Cafe' });
  });

  it('reports 404 and 503 as "unavailable", other failures not', async () => {
    for (const [status, expected] of [
      [404, true],
      [503, true],
      [500, false],
      [403, false],
    ] as const) {
      const { net } = client(status, { error: { code: 'x', message: 'y' } });
      const err = await net.networkInterfaces().catch((e: unknown) => e);
      expect(isUnavailable(err), String(status)).toBe(expected);
    }
    expect(isUnavailable(new Error('boom'))).toBe(false);
  });
});

describe('Wi-Fi', () => {
  const n = (ssid: string, signal: number, extra: Partial<WifiNetwork> = {}): WifiNetwork => ({
    ssid,
    signal,
    security: 'wpa2',
    frequency_mhz: 2437,
    known: false,
    active: false,
    ...extra,
  });

  it('puts the active network first, then the strongest', () => {
    const sorted = sortNetworks([n('b', 40), n('a', 90), n('c', 20, { active: true }), n('d', 90)]);
    expect(sorted.map((x) => x.ssid)).toEqual(['c', 'a', 'd', 'b']);
  });

  it('asks for a password only for a new secured network', () => {
    expect(needsPassword(n('x', 50))).toBe(true);
    expect(needsPassword(n('x', 50, { known: true }))).toBe(false);
    expect(needsPassword(n('x', 50, { security: 'open' }))).toBe(false);
  });

  it('checks WPA passphrase lengths', () => {
    expect(wifiPasswordValid('1234567')).toBe(false);
    expect(wifiPasswordValid('12345678')).toBe(true);
    expect(wifiPasswordValid('x'.repeat(63))).toBe(true);
    expect(wifiPasswordValid('x'.repeat(64))).toBe(false);
    expect(wifiPasswordValid('a'.repeat(64))).toBe(true); // 64 hex digits: a raw key
  });

  it('names the band', () => {
    expect(band(2412)).toBe('2.4');
    expect(band(5180)).toBe('5');
    expect(band(5955)).toBe('6');
    expect(band(0)).toBeNull();
  });
});
