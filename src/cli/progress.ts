/**
 * Progress bars for long CLI runs (warm, snapshot copies, GC), drawn by cli-progress on a
 * terminal and silent otherwise (scripts and logs get the one-line summary instead).
 */
import cliProgress from 'cli-progress';
import { formatSize } from '../util/size.js';

export class ProgressBar {
  private bar?: cliProgress.SingleBar;
  private statusShown = false;

  constructor(private readonly out: NodeJS.WriteStream) {}

  /** Shows `done` of `total` bytes, with a note (e.g. "3/10 files"). */
  update(done: number, total: number, note = ''): void {
    if (!this.out.isTTY) return;
    const payload = { sizes: `${formatSize(done)} / ${formatSize(total)}`, note };
    if (!this.bar) {
      this.bar = new cliProgress.SingleBar({
        stream: this.out, hideCursor: true, clearOnComplete: true, etaBuffer: 20,
        format: '{bar} {percentage}% | {sizes} | {note} | ETA {eta_formatted}',
      }, cliProgress.Presets.shades_classic);
      this.bar.start(Math.max(total, 1), done, payload);
    } else {
      this.bar.setTotal(Math.max(total, 1));
      this.bar.update(done, payload);
    }
  }

  /** A running count for work whose total is not known in advance (GC's listing). */
  status(text: string): void {
    if (!this.out.isTTY) return;
    this.out.write(`\r\x1b[K${text}`);
    this.statusShown = true;
  }

  done(): void {
    this.bar?.stop();
    this.bar = undefined;
    if (this.statusShown) this.out.write('\r\x1b[K');
    this.statusShown = false;
  }
}
