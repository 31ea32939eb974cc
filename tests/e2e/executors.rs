//! Where jobs run (`projects.<name>.executor`): the choice reaches the watcher, and a choice the
//! server cannot honour fails the job with a reply that says what to do.

use crate::helpers::*;
use crate::CI;

#[actix_web::test]
async fn a_runner_project_without_runners_fails_its_job_saying_what_to_do() {
    let mut setup = Setup::ci(CI);
    setup.project_extra = "    executor: runner\n    tags: [linux, docker]\n".into();
    let server = TestServer::start(setup).await;
    let (ack, reply) = server.run_and_reply("run hello-world", 1).await;
    assert_eq!(ack["response_type"], "in_channel", "{ack}");
    let text = slack_text(&reply);
    assert!(text.contains("failed"), "{text}");
    assert!(
        text.contains("projects.demo.executor: runner")
            && text.contains("no runners set up")
            && text.contains("projects.demo.executor: local"),
        "says why and what to do: {text}"
    );
    assert!(!text.contains("Hello World"), "nothing ran: {text}");
    // The job's log (the job page's) says it too.
    let logs = std::fs::read_dir(server.data_dir().join("logs")).expect("the logs folder");
    let log: String = logs
        .filter_map(Result::ok)
        .map(|entry| read(&entry.path()))
        .collect();
    assert!(log.contains("no runners set up"), "{log}");
    assert!(
        server.stderr().contains("no runners set up"),
        "the server warns at start: {}",
        server.stderr()
    );
}

#[actix_web::test]
async fn an_explicit_local_executor_runs_the_job_here() {
    let mut setup = Setup::ci(CI);
    setup.project_extra = "    executor: local\n".into();
    let server = TestServer::start(setup).await;
    let (_, reply) = server.run_and_reply("run hello-world", 1).await;
    let text = slack_text(&reply);
    assert!(
        text.contains("Hello World") && text.contains("succeeded"),
        "{text}"
    );
}
