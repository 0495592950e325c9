//! The `--fault` grammar: one spec per fault, the same on the command line,
//! in headless output and in the window.
