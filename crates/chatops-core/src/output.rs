//! The job trace (GitLab-runner style) and how a reply's output is cut from it.
//! (Being written: see the executor brief.)
