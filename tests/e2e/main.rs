//! End-to-end tests: the real `chatops` binary, real jobs in real shells, real HTTP to a fake
//! chat platform. One test binary (so the server binary builds once); modules by area.

mod adapters_security;
mod cli;
mod commands;
mod conformance;
mod durability;
mod executors;
mod helpers;
mod isolation;
mod live;
mod metrics;
mod page;
mod process;
mod runners;
mod slack;
mod usability;

/// The CI file most tests use: GitLab's two ChatOps examples and one job per behaviour.
pub const CI: &str = r#"
stages: [chatops, build]

hello-world:
  stage: chatops
  rules:
    - if: $CI_PIPELINE_SOURCE == "chat"
  script:
    - echo "Hello World"

ls:
  stage: chatops
  rules:
    - if: $CI_PIPELINE_SOURCE == "chat"
  script:
    - echo "This command will not be shown."
    - echo -e "section_start:$( date +%s ):chat_reply\r\033[0K\n$( ls -la )\nsection_end:$( date +%s ):chat_reply\r\033[0K"

.defaults: &defaults
  before_script:
    - echo "before one"

multi:
  <<: *defaults
  script:
    - echo "first"
    - echo "second"

vars:
  script:
    - 'printf "channel=%s\nuser=%s\nplatform=%s\nleak=%s\n" "$CHAT_CHANNEL" "$CHAT_USER_ID" "$CHAT_PLATFORM" "${SLACK_SIGNING_SECRET:-none}"'

echo:
  script:
    - printf '%s' "$CHAT_INPUT" > "$CI_PROJECT_DIR/input.txt"
    - printf '%s' "$CHAT_INPUT"

manual-deploy:
  when: manual
  script:
    - echo "deployed by chat"

build:
  stage: build
  except: [chat]
  script: [echo build]

nightly:
  rules:
    - if: $CI_PIPELINE_SOURCE == "schedule"
  script: [echo nightly]

fails:
  script:
    - echo "step one ok"
    - echo "about to fail"; exit 3
    - echo "never printed"

sleeper:
  timeout: 3 seconds
  script:
    - sleep 300 & echo $! > "$CI_PROJECT_DIR/bg.pid"
    - sleep 300

big:
  script:
    - head -c 100000000 /dev/zero | tr '\0' 'x'
    - echo; echo "done after 100 MB"

wide:
  script:
    - 'seq -f "line %g of the wide output" 1 2000'

.hidden-template:
  script: [echo hidden]
"#;
