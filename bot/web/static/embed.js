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
