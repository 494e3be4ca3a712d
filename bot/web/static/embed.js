/*
 * conversation-engine comment widget.
 *
 *   <script src="https://BOT_HOST/embed.js" data-url="POST_URL" async></script>
 *
 * Optional: data-theme="light" | "dark" (default: follow the reader's prefers-color-scheme);
 * data-avatars="discord" to show Discord profile pictures (loaded from Discord's CDN; by default
 * commenters get initials, so the widget makes no third-party request).
 * Loads the discussion from the same host as this script when the reader scrolls near it, and
 * draws it in a shadow root (the page's CSS cannot break it, ours cannot leak).
 * User content is only ever inserted as text, or as elements rebuilt one by one from the API's
 * sanitised HTML through a second allow-list here; no markup is built from strings.
 */
(function () {
  "use strict";

  var script = document.currentScript;
  if (!script || !script.src) { return; }
  var apiOrigin = new URL(script.src, document.baseURI).origin;
  var postUrl = script.getAttribute("data-url") || canonicalLink() || stripHash(location.href);
  var theme = (script.getAttribute("data-theme") || "").toLowerCase();
  var showAvatars = (script.getAttribute("data-avatars") || "").toLowerCase() === "discord";

  var ALLOWED_TAGS = {
    A: 1, BLOCKQUOTE: 1, BR: 1, CODE: 1, DEL: 1, EM: 1, H3: 1, H4: 1, H5: 1, LI: 1, OL: 1, P: 1,
    PRE: 1, SMALL: 1, SPAN: 1, STRONG: 1, TIME: 1, U: 1, UL: 1
  };
  var ALLOWED_CLASSES = {
    spoiler: 1, mention: 1, "mention-user": 1, "mention-role": 1, "mention-channel": 1, emoji: 1,
    subtext: 1
  };
  var STYLE = [
    ":host { all: initial; display: block; --ce-bg: #ffffff; --ce-fg: #1f2328; --ce-muted: #59636e;",
    "  --ce-line: #d1d9e0; --ce-card: #f6f8fa; --ce-accent: #5865f2; --ce-accent-fg: #ffffff;",
    "  --ce-code: #eff2f5; color-scheme: light; }",
    "@media (prefers-color-scheme: dark) { :host(:not([data-theme=light])) { --ce-bg: #0d1117;",
    "  --ce-fg: #e6edf3; --ce-muted: #9198a1; --ce-line: #3d444d; --ce-card: #151b23; --ce-code: #0d1117;",
    "  color-scheme: dark; } }",
    ":host([data-theme=dark]) { --ce-bg: #0d1117; --ce-fg: #e6edf3; --ce-muted: #9198a1;",
    "  --ce-line: #3d444d; --ce-card: #151b23; --ce-code: #0d1117; color-scheme: dark; }",
    ".ce { font: 15px/1.5 system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; color: var(--ce-fg);",
    "  background: var(--ce-bg); padding: 1rem 0; }",
    ".ce-top { display: flex; align-items: center; justify-content: space-between; flex-wrap: wrap;",
    "  gap: .75rem; margin-bottom: 1rem; }",
    ".ce-count { font-weight: 700; font-size: 1.1rem; margin: 0; }",
    ".ce-actions { display: flex; gap: .75rem; align-items: center; flex-wrap: wrap; }",
    ".ce-button { background: var(--ce-accent); color: var(--ce-accent-fg); text-decoration: none;",
    "  padding: .45rem .9rem; border-radius: .4rem; font-weight: 600; }",
    ".ce-button:hover { filter: brightness(1.1); }",
    ".ce-invite, .ce a { color: var(--ce-accent); }",
    ".ce-button.ce-button { color: var(--ce-accent-fg); }",
    "ol.ce-list, ol.ce-replies { list-style: none; margin: 0; padding: 0; }",
    "li.ce-comment { background: var(--ce-card); border: 1px solid var(--ce-line); border-radius: .5rem;",
    "  padding: .75rem 1rem; margin: 0 0 .75rem; }",
    "ol.ce-replies { margin: .75rem 0 0 .5rem; padding-left: .9rem; border-left: 2px solid var(--ce-line); }",
    "ol.ce-replies li.ce-comment { background: transparent; border: 0; padding: .35rem 0; margin: 0; }",
    ".ce-head { display: flex; align-items: center; gap: .5rem; flex-wrap: wrap; }",
    ".ce-avatar { width: 28px; height: 28px; border-radius: 50%; background: var(--ce-line);",
    "  display: inline-flex; align-items: center; justify-content: center; font-size: .8rem;",
    "  font-weight: 700; color: var(--ce-muted); overflow: hidden; flex: none; }",
    ".ce-avatar img { width: 100%; height: 100%; }",
    ".ce-author { font-weight: 600; }",
    ".ce-bot { font-size: .7rem; background: var(--ce-accent); color: var(--ce-accent-fg);",
    "  border-radius: .25rem; padding: 0 .3rem; }",
    ".ce-meta { color: var(--ce-muted); font-size: .825rem; }",
    ".ce-deleted { color: var(--ce-muted); font-style: italic; }",
    ".ce-body { overflow-wrap: anywhere; }",
    ".ce-body p { margin: .25rem 0; }",
    ".ce-body pre { background: var(--ce-code); padding: .5rem .75rem; border-radius: .3rem; overflow-x: auto; }",
    ".ce-body code { background: var(--ce-code); border-radius: .2rem; padding: 0 .2rem;",
    "  font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .875em; }",
    ".ce-body pre code { padding: 0; }",
    ".ce-body blockquote { margin: .25rem 0; padding-left: .75rem; border-left: 3px solid var(--ce-line); }",
    ".ce-body .spoiler { background: var(--ce-fg); color: transparent; border-radius: .2rem; cursor: pointer; }",
    ".ce-body .spoiler.ce-shown { background: var(--ce-code); color: inherit; cursor: auto; }",
    ".ce-body .mention { background: rgba(88, 101, 242, .15); color: var(--ce-accent); border-radius: .2rem;",
    "  padding: 0 .15rem; }",
    ".ce-body .subtext { color: var(--ce-muted); }",
    ".ce-reactions { display: flex; gap: .35rem; flex-wrap: wrap; margin: .4rem 0 0; padding: 0;",
    "  list-style: none; }",
    ".ce-reactions li { border: 1px solid var(--ce-line); border-radius: 1rem; padding: 0 .5rem;",
    "  font-size: .85rem; }",
    ".ce-files { margin: .35rem 0 0; padding-left: 1.2rem; font-size: .875rem; }",
    ".ce-empty, .ce-status { color: var(--ce-muted); }",
    ".ce-more { font: inherit; color: var(--ce-accent); background: transparent; border: 1px solid var(--ce-line);",
    "  border-radius: .4rem; padding: .45rem .9rem; cursor: pointer; }"
  ].join("\n");

  function canonicalLink() {
    var link = document.querySelector("link[rel=canonical]");
    return link && link.href ? link.href : null;
  }

  function stripHash(href) {
    var url = new URL(href);
    url.hash = "";
    return url.href;
  }

  function safeHref(value) {
    try {
      var url = new URL(value);
      if (url.protocol === "https:" || url.protocol === "http:" || url.protocol === "mailto:") {
        return url.href;
      }
    } catch (error) {
      return null;
    }
    return null;
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  function link(href, className, text) {
    var safe = safeHref(href);
    if (!safe) { return el("span", className, text); }
    var node = el("a", className, text);
    node.setAttribute("href", safe);
    node.setAttribute("rel", "nofollow ugc noopener noreferrer");
    node.setAttribute("target", "_blank");
    return node;
  }

  // The API's HTML is already sanitised by the server; this rebuilds it node by node through a
  // second allow-list so that nothing but known tags, classes and http(s) links can reach the page.
  function sanitisedFragment(html) {
    var parsed = new DOMParser().parseFromString("<body>" + html + "</body>", "text/html");
    var fragment = document.createDocumentFragment();
    copyChildren(parsed.body, fragment);
    return fragment;
  }

  function copyChildren(source, target) {
    for (var child = source.firstChild; child; child = child.nextSibling) {
      if (child.nodeType === 3) {
        target.appendChild(document.createTextNode(child.nodeValue));
      } else if (child.nodeType === 1) {
        var tag = child.tagName.toUpperCase();
        if (!ALLOWED_TAGS[tag]) {
          if (tag !== "SCRIPT" && tag !== "STYLE") { copyChildren(child, target); }
          continue;
        }
        var copy;
        if (tag === "A") {
          var href = safeHref(child.getAttribute("href") || "");
          if (!href) { copyChildren(child, target); continue; }
          copy = document.createElement("a");
          copy.setAttribute("href", href);
          copy.setAttribute("rel", "nofollow ugc noopener noreferrer");
          copy.setAttribute("target", "_blank");
        } else {
          copy = document.createElement(tag.toLowerCase());
          if (tag === "TIME" && child.getAttribute("datetime")) {
            copy.setAttribute("datetime", child.getAttribute("datetime"));
          }
          if (tag === "OL" && /^[0-9]{1,9}$/.test(child.getAttribute("start") || "")) {
            copy.setAttribute("start", child.getAttribute("start"));
          }
          if (tag === "CODE" && /^language-[A-Za-z0-9_+#.-]{1,32}$/.test(child.getAttribute("class") || "")) {
            copy.className = child.getAttribute("class");
          }
          if (tag === "SPAN" || tag === "P") {
            var classes = (child.getAttribute("class") || "").split(/\s+/).filter(function (name) {
              return ALLOWED_CLASSES[name] === 1;
            });
            if (classes.length) { copy.className = classes.join(" "); }
          }
        }
        copyChildren(child, copy);
        target.appendChild(copy);
      }
    }
  }

  function formatTime(iso) {
    var moment = new Date(iso);
    if (isNaN(moment.getTime())) { return ""; }
    return moment.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  }

  function initials(name) {
    var letters = String(name || "?").trim().split(/\s+/).slice(0, 2).map(function (part) {
      return Array.from(part)[0] || "";
    }).join("");
    return letters.toUpperCase() || "?";
  }

  function avatar(author) {
    var box = el("span", "ce-avatar");
    box.setAttribute("aria-hidden", "true");
    var src = showAvatars && author.avatar_url ? safeHref(author.avatar_url) : null;
    if (src && src.indexOf("https:") === 0) {
      var img = document.createElement("img");
      img.setAttribute("alt", "");
      img.setAttribute("loading", "lazy");
      img.setAttribute("referrerpolicy", "no-referrer");
      img.setAttribute("src", src);
      box.appendChild(img);
    } else {
      box.textContent = initials(author.name);
    }
    return box;
  }

  function renderComment(comment, nested) {
    var item = el("li", "ce-comment");
    item.setAttribute("data-comment-id", String(comment.id));
    var head = el("div", "ce-head");
    item.appendChild(head);
    var when = el("time", "ce-meta", formatTime(comment.created_at));
    when.setAttribute("datetime", String(comment.created_at || ""));
    if (comment.deleted || !comment.author) {
      head.appendChild(el("span", "ce-deleted", "Deleted comment"));
      head.appendChild(when);
    } else {
      head.appendChild(avatar(comment.author));
      head.appendChild(el("span", "ce-author", comment.author.name));
      if (comment.author.bot) { head.appendChild(el("span", "ce-bot", "BOT")); }
      head.appendChild(when);
      if (comment.edited) { head.appendChild(el("span", "ce-meta", "(edited)")); }
      if (comment.origin && comment.origin !== "discord") {
        head.appendChild(el("span", "ce-meta", "\u00b7 archived comment"));
      }
      if (nested && comment.reply_to_name) {
        head.appendChild(el("span", "ce-meta", "replying to " + comment.reply_to_name));
      } else if (comment.reply_to_removed) {
        head.appendChild(el("span", "ce-meta", "replying to a removed comment"));
      }
      var body = el("div", "ce-body");
      body.appendChild(sanitisedFragment(String(comment.html || "")));
      item.appendChild(body);
      if (comment.attachments && comment.attachments.length) {
        var files = el("ul", "ce-files");
        comment.attachments.forEach(function (file) {
          var entry = el("li");
          entry.appendChild(link(file.url, "", file.filename));
          files.appendChild(entry);
        });
        item.appendChild(files);
      }
      if (comment.links && comment.links.length) {
        var links = el("ul", "ce-files");
        comment.links.forEach(function (extra) {
          var entry = el("li");
          entry.appendChild(link(extra.url, "", extra.name || extra.url));
          links.appendChild(entry);
        });
        item.appendChild(links);
      }
      if (comment.reactions && comment.reactions.length) {
        var reactions = el("ul", "ce-reactions");
        comment.reactions.forEach(function (reaction) {
          var entry = el("li", "", reaction.emoji + " " + reaction.count);
          entry.setAttribute("title", reaction.name);
          reactions.appendChild(entry);
        });
        item.appendChild(reactions);
      }
    }
    if (!nested && comment.replies && comment.replies.length) {
      var replies = el("ol", "ce-replies");
      comment.replies.forEach(function (reply) { replies.appendChild(renderComment(reply, true)); });
      item.appendChild(replies);
    }
    return item;
  }

  function reactionSummary(reactions) {
    if (!reactions || !(Number(reactions.total) > 0) || !reactions.top) { return null; }
    var line = el("ul", "ce-reactions ce-summary");
    line.setAttribute("aria-label", reactions.total + " reactions");
    reactions.top.forEach(function (reaction) {
      line.appendChild(el("li", "", reaction.emoji + " " + reaction.count));
    });
    return line;
  }

  function render(root, data) {
    var box = el("section", "ce");
    box.setAttribute("aria-label", "Comments");
    var top = el("div", "ce-top");
    var count = Number(data.comment_count) || 0;
    top.appendChild(el("h2", "ce-count", count + (count === 1 ? " comment" : " comments")));
    var actions = el("div", "ce-actions");
    if (data.thread && data.thread.url && String(data.thread.url).indexOf("https://discord.com/") === 0) {
      var join = link(data.thread.url, "ce-button", "Join the discussion on Discord");
      actions.appendChild(join);
    }
    if (data.invite_url) {
      actions.appendChild(link(data.invite_url, "ce-invite", "Not on the server yet? Join it"));
    }
    top.appendChild(actions);
    box.appendChild(top);
    var summary = reactionSummary(data.reactions);
    if (summary) { box.appendChild(summary); }
    if (!data.comments || !data.comments.length) {
      box.appendChild(el("p", "ce-empty", "No comments yet. Start the conversation on Discord."));
    } else {
      var list = el("ol", "ce-list");
      data.comments.forEach(function (comment) { list.appendChild(renderComment(comment, false)); });
      box.appendChild(list);
      if (data.next_after) { box.appendChild(moreButton(list, String(data.next_after))); }
    }
    box.addEventListener("click", function (event) {
      var target = event.target;
      if (target && target.classList && target.classList.contains("spoiler")) {
        target.classList.add("ce-shown");
      }
    });
    root.replaceChildren(box);
    setUpReplies(box, data);
  }

  // Long discussions come in pages; the next one loads when the reader asks for it.
  function moreButton(list, after) {
    var button = el("button", "ce-more", "Load more comments");
    button.setAttribute("type", "button");
    button.addEventListener("click", function () {
      button.disabled = true;
      button.textContent = "Loading\u2026";
      fetchPage(after).then(function (data) {
        (data.comments || []).forEach(function (comment) { list.appendChild(renderComment(comment, false)); });
        if (data.next_after) {
          button.replaceWith(moreButton(list, String(data.next_after)));
        } else {
          button.remove();
        }
      }).catch(function () {
        button.disabled = false;
        button.textContent = "Could not load more comments; try again";
      });
    });
    return button;
  }

  function fetchPage(after) {
    var endpoint = apiOrigin + "/api/v1/discussion?url=" + encodeURIComponent(postUrl);
    if (after) { endpoint += "&after=" + encodeURIComponent(after); }
    return fetch(endpoint, { credentials: "omit", mode: "cors" }).then(function (response) {
      if (response.status === 404) { return { missing: true }; }
      if (!response.ok) { throw new Error("HTTP " + response.status); }
      return response.json();
    });
  }

  function status(root, text) {
    var box = el("section", "ce");
    box.appendChild(el("p", "ce-status", text));
    root.replaceChildren(box);
  }

  function load(host, root) {
    host.setAttribute("aria-busy", "true");
    status(root, "Loading comments\u2026");
    fetchPage(null).then(function (data) {
      if (data.missing) {
        status(root, "No discussion for this post yet.");
      } else {
        render(root, data);
      }
      host.setAttribute("aria-busy", "false");
      host.setAttribute("data-state", "loaded");
    }).catch(function () {
      status(root, "The comments could not be loaded right now.");
      host.setAttribute("aria-busy", "false");
      host.setAttribute("data-state", "error");
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Replying from the blog (issue 21): "Sign in with Discord to reply" opens a popup on the bot's
  // server; its last page hands a session token to this page (postMessage, to this origin only).
  // The token lives in this origin's localStorage and goes out as "Authorization: Bearer" (no
  // cookies). Off unless the server says replying is enabled; the Discord link stays either way.
  var SESSION_KEY = "conversation-engine:session:" + apiOrigin;
  var OWN_KEY = "conversation-engine:own:" + apiOrigin;
  var REPLY_STYLE = [
    ".ce-reply { border: 1px solid var(--ce-line); border-radius: .5rem; padding: .75rem 1rem; margin: 0 0 1rem; }",
    ".ce-reply label { display: block; font-weight: 600; margin-bottom: .35rem; }",
    ".ce-reply textarea { box-sizing: border-box; width: 100%; min-height: 5rem; font: inherit; color: inherit;",
    "  background: var(--ce-bg); border: 1px solid var(--ce-line); border-radius: .4rem; padding: .5rem; }",
    ".ce-reply-row { display: flex; gap: .75rem; align-items: center; flex-wrap: wrap; margin-top: .5rem; }",
    ".ce-reply button, .ce-comment-actions button { font: inherit; cursor: pointer; }",
    ".ce-signin, .ce-post { background: var(--ce-accent); color: var(--ce-accent-fg); border: 0;",
    "  border-radius: .4rem; padding: .45rem .9rem; font-weight: 600; }",
    ".ce-link-button { background: transparent; border: 0; color: var(--ce-accent); padding: 0;",
    "  text-decoration: underline; }",
    ".ce-counter { color: var(--ce-muted); font-size: .825rem; }",
    ".ce-counter.ce-over { color: #d1242f; font-weight: 600; }",
    ".ce-message { margin: .5rem 0 0; }",
    ".ce-message.ce-error { color: #d1242f; }",
    ".ce-comment-actions { margin-top: .25rem; display: flex; gap: .75rem; font-size: .825rem; }",
    ":focus-visible { outline: 2px solid var(--ce-accent); outline-offset: 2px; }"
  ].join("\n");

  function readJson(key, fallback) {
    try {
      var value = JSON.parse(window.localStorage.getItem(key) || "null");
      return value === null ? fallback : value;
    } catch (error) {
      return fallback;
    }
  }

  function writeJson(key, value) {
    try {
      if (value === null) { window.localStorage.removeItem(key); } else {
        window.localStorage.setItem(key, JSON.stringify(value));
      }
    } catch (error) { /* storage refused (private mode): the session lasts as long as the page */ }
  }

  var replying = null;  // the server's answer to /api/v1/replying, fetched once

  function replyingEnabled() {
    if (!replying) {
      replying = fetch(apiOrigin + "/api/v1/replying", { credentials: "omit", mode: "cors" })
        .then(function (response) { return response.ok ? response.json() : { enabled: false }; })
        .catch(function () { return { enabled: false }; });
    }
    return replying;
  }

  function setUpReplies(box, data) {
    if (!data.thread) { return; }
    replyingEnabled().then(function (info) {
      if (!info.enabled) { return; }
      var style = document.createElement("style");
      style.textContent = REPLY_STYLE;
      box.appendChild(style);
      var widget = new ReplyWidget(box, data, Number(info.max_length) || 2000);
      widget.show();
    });
  }

  function ReplyWidget(box, data, maxLength) {
    this.box = box;
    this.data = data;
    this.maxLength = maxLength;
    this.replyTo = null;
    this.area = el("div", "ce-reply");
    this.area.setAttribute("role", "region");
    this.area.setAttribute("aria-label", "Write a comment");
    var top = box.querySelector(".ce-top");
    box.insertBefore(this.area, top ? top.nextSibling : box.firstChild);
    var self = this;
    window.addEventListener("message", function (event) {
      if (event.origin !== apiOrigin || !event.data || event.data.type !== "conversation-engine:session") {
        return;
      }
      if (event.data.token) {
        writeJson(SESSION_KEY, { token: String(event.data.token), user: event.data.user || {} });
        self.show();
        var input = self.area.querySelector("textarea");
        if (input) { input.focus(); }
      } else {
        self.show();
        self.say(String(event.data.error || "Sign-in did not complete."), true);
      }
    });
  }

  ReplyWidget.prototype.session = function () { return readJson(SESSION_KEY, null); };

  ReplyWidget.prototype.say = function (text, isError, extraLink) {
    var message = this.area.querySelector(".ce-message");
    if (!message) { return; }
    message.className = "ce-message" + (isError ? " ce-error" : "");
    message.setAttribute("role", isError ? "alert" : "status");
    message.replaceChildren(document.createTextNode(text));
    if (extraLink) {
      message.appendChild(document.createTextNode(" "));
      message.appendChild(link(extraLink.url, "ce-invite", extraLink.text));
    }
  };

  ReplyWidget.prototype.show = function () {
    var self = this;
    var session = this.session();
    var message = el("p", "ce-message");
    message.setAttribute("role", "status");
    message.setAttribute("aria-live", "polite");
    if (!session) {
      var signIn = el("button", "ce-signin", "Sign in with Discord to reply");
      signIn.setAttribute("type", "button");
      signIn.addEventListener("click", function () {
        var url = apiOrigin + "/auth/discord/login?origin=" + encodeURIComponent(location.origin);
        var popup = window.open(url, "conversation-engine-login", "popup,width=520,height=760");
        if (!popup) { self.say("Your browser blocked the sign-in window; allow pop-ups for this site.", true); }
      });
      this.area.replaceChildren(signIn, message);
      this.markComments(false);
      return;
    }
    var form = el("form");
    form.setAttribute("novalidate", "");
    var label = el("label", "", "Your comment");
    label.setAttribute("for", "ce-reply-text");
    var context = el("p", "ce-meta ce-replying");
    context.hidden = true;
    var text = el("textarea");
    text.id = "ce-reply-text";
    text.setAttribute("maxlength", String(this.maxLength));
    text.setAttribute("aria-describedby", "ce-reply-counter");
    var counter = el("span", "ce-counter", "0 / " + this.maxLength);
    counter.id = "ce-reply-counter";
    counter.setAttribute("aria-live", "polite");
    text.addEventListener("input", function () {
      var length = text.value.trim().length;
      counter.textContent = length + " / " + self.maxLength;
      counter.classList.toggle("ce-over", length > self.maxLength);
    });
    var post = el("button", "ce-post", "Post comment");
    post.setAttribute("type", "submit");
    var who = el("span", "ce-meta", "Signed in as " + String(session.user && session.user.name || "you") + " \u00b7 ");
    var signOut = el("button", "ce-link-button", "Sign out");
    signOut.setAttribute("type", "button");
    signOut.addEventListener("click", function () { self.signOut(); });
    who.appendChild(signOut);
    var row = el("div", "ce-reply-row");
    row.appendChild(post);
    row.appendChild(counter);
    row.appendChild(who);
    form.appendChild(label);
    form.appendChild(context);
    form.appendChild(text);
    form.appendChild(row);
    form.appendChild(message);
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      self.submit(text, post);
    });
    this.area.replaceChildren(form);
    this.setReplyTo(null);
    this.markComments(true);
  };

  ReplyWidget.prototype.setReplyTo = function (comment) {
    var self = this;
    this.replyTo = comment;
    var context = this.area.querySelector(".ce-replying");
    if (!context) { return; }
    context.hidden = !comment;
    context.replaceChildren();
    if (comment) {
      context.appendChild(document.createTextNode("Replying to " + comment.name + " \u00b7 "));
      var cancel = el("button", "ce-link-button", "Cancel reply");
      cancel.setAttribute("type", "button");
      cancel.addEventListener("click", function () { self.setReplyTo(null); });
      context.appendChild(cancel);
    }
  };

  // A "Reply" button on every comment (and "Delete" on the reader's own), once signed in.
  ReplyWidget.prototype.markComments = function (signedIn) {
    var self = this;
    var own = readJson(OWN_KEY, []);
    Array.prototype.forEach.call(this.box.querySelectorAll("li.ce-comment"), function (item) {
      var old = item.querySelector(":scope > .ce-comment-actions");
      if (old) { old.remove(); }
      if (!signedIn || item.querySelector(":scope > .ce-head > .ce-deleted")) { return; }
      var id = item.getAttribute("data-comment-id");
      var authorNode = item.querySelector(":scope > .ce-head > .ce-author");
      var name = authorNode ? authorNode.textContent : "a comment";
      var actions = el("div", "ce-comment-actions");
      var reply = el("button", "ce-link-button", "Reply");
      reply.setAttribute("type", "button");
      reply.setAttribute("aria-label", "Reply to " + name);
      reply.addEventListener("click", function () {
        self.setReplyTo({ id: id, name: name });
        var input = self.area.querySelector("textarea");
        if (input) { input.focus(); }
      });
      actions.appendChild(reply);
      if (own.indexOf(id) !== -1) {
        var remove = el("button", "ce-link-button", "Delete");
        remove.setAttribute("type", "button");
        remove.setAttribute("aria-label", "Delete your comment");
        remove.addEventListener("click", function () { self.remove(id, item); });
        actions.appendChild(remove);
      }
      var replies = item.querySelector(":scope > ol.ce-replies");
      item.insertBefore(actions, replies);
    });
  };

  ReplyWidget.prototype.request = function (method, path, body) {
    var session = this.session();
    var headers = { Authorization: "Bearer " + (session ? session.token : "") };
    if (body) { headers["Content-Type"] = "application/json"; }
    return fetch(apiOrigin + path, {
      method: method, headers: headers, body: body ? JSON.stringify(body) : undefined,
      credentials: "omit", mode: "cors"
    });
  };

  ReplyWidget.prototype.refused = function (response) {
    var self = this;
    return response.json().catch(function () { return {}; }).then(function (body) {
      var code = body.code;
      if (code === "signed_out") {
        writeJson(SESSION_KEY, null);
        self.show();
        self.say("You were signed out; sign in again to reply.", true);
      } else if (code === "not_member") {
        var invite = self.data.invite_url;
        self.say("You need to be a member of the blog's Discord server to reply.", true,
                 invite ? { url: invite, text: "Join the server" } : null);
      } else if (code === "rate_limited") {
        var wait = Number(response.headers.get("Retry-After")) || Number(body.retry_after) || 10;
        var when = new Date(Date.now() + wait * 1000).toLocaleTimeString();
        self.say("You are commenting too fast; try again in " + wait + " s (at " + when + ").", true);
      } else if (code === "locked") {
        self.say("This discussion is locked: no new comments.", true);
      } else {
        self.say(String(body.error || "The comment could not be posted (HTTP " + response.status + ")."), true);
      }
    });
  };

  ReplyWidget.prototype.submit = function (text, button) {
    var self = this;
    var content = text.value.trim();
    if (!content) { this.say("Write something first.", true); text.focus(); return; }
    if (content.length > this.maxLength) {
      this.say("A comment has at most " + this.maxLength + " characters.", true);
      return;
    }
    var body = { url: postUrl, content: content };
    if (this.replyTo) { body.reply_to = this.replyTo.id; }
    button.disabled = true;
    this.say("Posting\u2026", false);
    this.request("POST", "/api/v1/comments", body).then(function (response) {
      if (!response.ok) { return self.refused(response); }
      return response.json().then(function (comment) {
        var own = readJson(OWN_KEY, []);
        own.push(String(comment.id));
        writeJson(OWN_KEY, own.slice(-200));
        self.place(comment);
        text.value = "";
        text.dispatchEvent(new Event("input"));
        self.setReplyTo(null);
        self.say("Your comment is posted.", false);
      });
    }).catch(function () {
      self.say("The comment could not be sent; check your connection and try again.", true);
    }).then(function () { button.disabled = false; });
  };

  // The new comment goes where a reload would show it: under its top comment, or at the end.
  ReplyWidget.prototype.place = function (comment) {
    if (comment.pending) { return; }
    var parentId = this.replyTo ? this.replyTo.id : null;
    var list = this.box.querySelector("ol.ce-list");
    if (!list) {
      list = el("ol", "ce-list");
      var empty = this.box.querySelector(".ce-empty");
      if (empty) { empty.replaceWith(list); } else { this.box.appendChild(list); }
    }
    var target = list;
    if (parentId) {
      var parent = this.box.querySelector('li.ce-comment[data-comment-id="' + parentId + '"]');
      var top = parent && parent.parentNode && parent.parentNode.classList.contains("ce-replies")
        ? parent.parentNode.parentNode : parent;
      if (top) {
        target = top.querySelector(":scope > ol.ce-replies");
        if (!target) { target = el("ol", "ce-replies"); top.appendChild(target); }
      }
    }
    target.appendChild(renderComment(comment, target !== list));
    this.markComments(true);
  };

  ReplyWidget.prototype.remove = function (id, item) {
    var self = this;
    this.request("DELETE", "/api/v1/comments/" + encodeURIComponent(id)).then(function (response) {
      if (response.status !== 204) { return self.refused(response); }
      item.replaceWith(renderComment({ id: id, deleted: true, created_at: null }, false));
      self.say("Your comment is deleted.", false);
    }).catch(function () { self.say("The comment could not be deleted; try again.", true); });
  };

  ReplyWidget.prototype.signOut = function () {
    var self = this;
    this.request("POST", "/auth/logout").catch(function () { return null; }).then(function () {
      writeJson(SESSION_KEY, null);
      self.show();
      self.say("You are signed out.", false);
    });
  };
  // --------------------------------------------------------------- end of replying from the blog

  var host = document.createElement("div");
  host.className = "conversation-engine-comments";
  if (theme === "light" || theme === "dark") { host.setAttribute("data-theme", theme); }
  script.parentNode.insertBefore(host, script.nextSibling);
  var root = host.attachShadow ? host.attachShadow({ mode: "open" }) : host;
  var style = document.createElement("style");
  style.textContent = STYLE;
  root.appendChild(style);
  var mount = document.createElement("div");
  root.appendChild(mount);

  if ("IntersectionObserver" in window) {
    var observer = new IntersectionObserver(function (entries) {
      if (entries.some(function (entry) { return entry.isIntersecting; })) {
        observer.disconnect();
        load(host, mount);
      }
    }, { rootMargin: "600px 0px" });
    observer.observe(host);
  } else {
    load(host, mount);
  }
})();
