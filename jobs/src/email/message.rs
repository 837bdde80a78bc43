//! Builds the MIME message: multipart/alternative (plain text, then HTML),
//! wrapped in multipart/mixed when there are attachments, with a
//! Message-ID derived from the job id so that every retry sends the same one
//! (receivers and the job result can match them).

use lettre::message::header::ContentType;
use lettre::message::{Attachment as MimeAttachment, Mailbox, MultiPart, SinglePart};
use lettre::Message;
use uuid::Uuid;

use super::templates::Rendered;

/// An attachment read from the file store.
pub struct AttachmentData {
    pub filename: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// Addresses of one email, parsed.
pub struct Addresses {
    pub from: Mailbox,
    pub to: Vec<Mailbox>,
    pub cc: Vec<Mailbox>,
    pub bcc: Vec<Mailbox>,
    pub reply_to: Option<Mailbox>,
}

/// `<job-uuid@peyk>`: the same on every attempt of a job.
pub fn message_id(job_id: Uuid) -> String {
    format!("<{job_id}@peyk>")
}

/// The content type for an attachment's filename (e.g. `application/pdf`),
/// falling back to what the upload said, then to octet-stream.
pub fn guess_content_type(filename: &str, uploaded_as: Option<&str>) -> String {
    match mime_guess::from_path(filename).first() {
        Some(mime) => mime.essence_str().to_owned(),
        None => uploaded_as.filter(|t| t.parse::<ContentType>().is_ok()).unwrap_or("application/octet-stream").to_owned(),
    }
}

pub fn build(job_id: Uuid, addresses: Addresses, content: Rendered, attachments: Vec<AttachmentData>) -> Result<Message, String> {
    let mut builder = Message::builder().from(addresses.from).subject(content.subject).message_id(Some(message_id(job_id)));
    for to in addresses.to {
        builder = builder.to(to);
    }
    for cc in addresses.cc {
        builder = builder.cc(cc);
    }
    for bcc in addresses.bcc {
        builder = builder.bcc(bcc);
    }
    if let Some(reply_to) = addresses.reply_to {
        builder = builder.reply_to(reply_to);
    }

    let text = SinglePart::builder().header(ContentType::TEXT_PLAIN).body(content.text);
    let body = match content.html {
        Some(html) => Body::Multi(MultiPart::alternative().singlepart(text).singlepart(SinglePart::html(html))),
        None => Body::Single(text),
    };
    let message = if attachments.is_empty() {
        match body {
            Body::Multi(multi) => builder.multipart(multi),
            Body::Single(single) => builder.singlepart(single),
        }
    } else {
        let mut mixed = match body {
            Body::Multi(multi) => MultiPart::mixed().multipart(multi),
            Body::Single(single) => MultiPart::mixed().singlepart(single),
        };
        for attachment in attachments {
            let content_type = ContentType::parse(&attachment.content_type)
                .unwrap_or_else(|_| ContentType::parse("application/octet-stream").expect("valid content type"));
            mixed = mixed.singlepart(MimeAttachment::new(attachment.filename).body(attachment.bytes, content_type));
        }
        builder.multipart(mixed)
    };
    message.map_err(|e| e.to_string())
}

enum Body {
    Multi(MultiPart),
    Single(SinglePart),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dev_sender_parses() {
        // infrastructure/dev/up.sh's default PEYK_EMAIL_FROM.
        assert!("Peyk <noreply@peyk.local>".parse::<Mailbox>().is_ok());
    }

    #[test]
    fn content_types_follow_the_filename() {
        assert_eq!(guess_content_type("report.pdf", None), "application/pdf");
        assert_eq!(guess_content_type("scan.PNG", Some("application/octet-stream")), "image/png");
        assert_eq!(guess_content_type("notes", Some("text/plain")), "text/plain");
        assert_eq!(guess_content_type("notes", None), "application/octet-stream");
    }

    #[test]
    fn the_message_has_both_parts_the_attachment_and_the_job_message_id() {
        let job_id = Uuid::now_v7();
        let addresses = Addresses {
            from: "Clinic <noreply@example.com>".parse().unwrap(),
            to: vec!["a@example.com".parse().unwrap()],
            cc: vec![],
            bcc: vec!["hidden@example.com".parse().unwrap()],
            reply_to: None,
        };
        let content = Rendered { subject: "سلام".into(), html: Some("<p>سلام</p>".into()), text: "سلام".into() };
        let attachment = AttachmentData { filename: "r.pdf".into(), content_type: "application/pdf".into(), bytes: b"%PDF-1.4".to_vec() };
        let message = build(job_id, addresses, content, vec![attachment]).unwrap();
        let raw = String::from_utf8(message.formatted()).unwrap();
        assert!(raw.contains(&format!("Message-ID: <{job_id}@peyk>")), "{raw}");
        assert!(raw.contains("multipart/mixed") && raw.contains("multipart/alternative"));
        assert!(raw.contains("text/plain") && raw.contains("text/html") && raw.contains("application/pdf"));
        assert!(!raw.contains("hidden@example.com"), "Bcc stays out of the headers");
        assert_eq!(message.envelope().to().len(), 2);
    }
}
