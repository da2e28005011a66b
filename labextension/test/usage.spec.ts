import { describe, expect, it } from 'vitest';

import { MB, memoryHint, peakLine, plotGeometry, polylinePoints, samplesFromSpark, thin, UsageSamples } from '../src/usage';

const BOX = { width: 110, height: 60, left: 10, right: 0, top: 10, bottom: 0 }; // plot area 100 x 50

function samples(memMb: number[], cpu: number[], limitMb = 1024, cores = 1): UsageSamples {
  return {
    memoryLimitBytes: limitMb * MB,
    cpuCores: cores,
    items: memMb.map((mb, i) => ({ at: new Date(Date.UTC(2026, 0, 1, 0, 0, i * 3)).toISOString(), memBytes: mb * MB, cpuUsage: cpu[i] }))
  };
}

describe('polylinePoints', () => {
  it('puts zero at the bottom, top at the top and spreads the points over the width', () => {
    expect(polylinePoints([0, 50, 100], 100, BOX)).toBe('10,60 60,35 110,10');
  });

  it('clips values above the top and below zero', () => {
    expect(polylinePoints([200, -5], 100, BOX)).toBe('10,10 110,60');
  });

  it('places points by their time when given', () => {
    expect(polylinePoints([0, 0, 0], 1, BOX, [0, 0.1, 1])).toBe('10,60 20,60 110,60');
  });
});

describe('plotGeometry', () => {
  it('draws memory against the limit and CPU against the cores', () => {
    const g = plotGeometry(samples([256, 512], [50, 100], 1024, 2), BOX);
    expect(g.memoryTopBytes).toBe(1024 * MB);
    expect(g.cpuTopPct).toBe(200);
    expect(g.memoryPoints).toBe('10,47.5 110,35'); // a quarter, then half of the limit
    expect(g.cpuPoints).toBe('10,47.5 110,35');
    expect(g.limitY).toBe(10);
    expect([g.memMaxBytes, g.memLastBytes, g.cpuMaxPct, g.spanSecs, g.count]).toEqual([512 * MB, 512 * MB, 100, 3, 2]);
  });

  it('lifts the scale above the limit when the run used more (the limit line then sits below the top)', () => {
    const g = plotGeometry(samples([100, 200], [0, 0], 100), BOX);
    expect(g.memoryTopBytes).toBe(200 * MB);
    expect(g.limitY).toBe(35);
  });

  it('scales CPU above the cores when a sample exceeds them', () => {
    expect(plotGeometry(samples([1, 1], [150, 20], 1024, 1), BOX).cpuTopPct).toBe(150);
  });

  it('scales memory to its own peak without a limit', () => {
    const g = plotGeometry({ ...samples([10, 20], [0, 0]), memoryLimitBytes: 0 }, BOX);
    expect(g.memoryTopBytes).toBe(20 * MB);
    expect(g.memoryPoints.split(' ')[1]).toBe('110,10');
  });
});

describe('thin', () => {
  it('keeps at most max items, the first and the newest among them', () => {
    const items = Array.from({ length: 1000 }, (_, i) => i);
    const kept = thin(items, 60);
    expect(kept).toHaveLength(60);
    expect(kept[0]).toBe(0);
    expect(kept[59]).toBe(999);
    expect(thin([1, 2, 3], 60)).toEqual([1, 2, 3]);
  });
});

describe('samplesFromSpark', () => {
  it('turns the saved sparkline (MB, % of a core) into samples against the limit', () => {
    const s = samplesFromSpark({ memMb: [10, 20], cpuPct: [5, 7] }, 512);
    expect(s.memoryLimitBytes).toBe(512 * MB);
    expect(s.items.map(i => [i.memBytes, i.cpuUsage])).toEqual([[10 * MB, 5], [20 * MB, 7]]);
    expect(samplesFromSpark(undefined, null).items).toEqual([]);
  });
});

describe('memoryHint and peakLine', () => {
  // The table of tests/test_notebook_sizing.py: Lab says what the notebook's live view says.
  const cases: [number, number, boolean, string][] = [
    [312, 1024, false, ''],
    [100, 1024, false, 'a 256 MB limit would do'],
    [20, 1024, false, 'a 128 MB limit would do'],
    [20, 128, false, ''],
    [950, 1024, false, 'close to the limit: raise the memory (--memory 2048)'],
    [900, 1024, false, ''],
    [500, 1024, true, 'it ran out of memory: raise the memory (--memory 2048)'],
    [0, 1024, true, 'it ran out of memory: raise the memory (--memory 2048)'],
    [32000, 32768, false, 'close to the limit: raise the memory'],
    [0, 1024, false, '']
  ];
  it.each(cases)('peak %i MB of %i MB (oom %s): "%s"', (peakMb, limitMb, oom, hint) => {
    expect(memoryHint(peakMb * MB, limitMb, oom)).toBe(hint);
  });

  it('says the peak against the limit, the hint after a dash', () => {
    expect(peakLine(312 * MB, 1024)).toBe('peak 312 MB of 1024 MB');
    expect(peakLine(100 * MB, 1024)).toBe('peak 100 MB of 1024 MB - a 256 MB limit would do');
    expect(peakLine(null, 1024)).toBe('peak not measured, limit 1024 MB');
  });
});
