// The timing behind Highlight, without React: a mark that turns on at a change and
// turns off `ms` after the last change of a burst, never off and on again in between.

export class Pulse {
  private timer: ReturnType<typeof setTimeout> | undefined;
  private lit = false;

  constructor(
    private readonly ms: number,
    private readonly onChange: (on: boolean) => void,
  ) {}

  get on(): boolean {
    return this.lit;
  }

  mark(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.set(false), this.ms);
    this.set(true);
  }

  dispose(): void {
    clearTimeout(this.timer);
  }

  private set(on: boolean): void {
    if (on === this.lit) return;
    this.lit = on;
    this.onChange(on);
  }
}
