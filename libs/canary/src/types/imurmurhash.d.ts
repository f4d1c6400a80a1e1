/** The part of imurmurhash (flagd-core's own MurmurHash3, for `fractional`) that the shorthand matcher calls; the package has no types. */
declare module 'imurmurhash' {
  interface MurmurHash3State {
    result(): number;
  }
  /** Called without `new`: hashes `key` in a shared state and returns it. */
  function MurmurHash3(key: string, seed?: number): MurmurHash3State;
  // The package's own shape (module.exports = MurmurHash3), not a choice of ours.
  // eslint-disable-next-line no-restricted-syntax
  export default MurmurHash3;
}
