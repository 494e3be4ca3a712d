<?php
// Loads the WordPress plugin with the few WordPress functions it calls stubbed, then plays
// WordPress's part: admin_init, the comments template, the comments number in a list.
// Prints one JSON object with what came out.
define('ABSPATH', '/tmp/');
$GLOBALS['filters'] = array();
$GLOBALS['options'] = array('conversation_engine_server' => $argv[2]);
$GLOBALS['singular'] = true;
function add_action($hook, $callback, $priority = 10, $args = 1) { $GLOBALS['filters'][$hook][] = $callback; }
function add_filter($hook, $callback, $priority = 10, $args = 1) { $GLOBALS['filters'][$hook][] = $callback; }
function apply($hook, ...$args) { foreach ($GLOBALS['filters'][$hook] ?? array() as $cb) { $args[0] = $cb(...$args); } return $args[0]; }
function get_option($name, $default = false) { return $GLOBALS['options'][$name] ?? $default; }
function esc_url_raw($url, $protocols = null) {
    $url = trim((string) $url);
    return preg_match('~^https?://[^\s"\'<>]+$~i', $url) ? $url : '';
}
function esc_url($url) { return htmlspecialchars(esc_url_raw($url), ENT_QUOTES); }
function esc_attr($text) { return htmlspecialchars((string) $text, ENT_QUOTES); }
function esc_html($text) { return htmlspecialchars((string) $text, ENT_QUOTES); }
function wp_kses_post($text) { return strip_tags((string) $text, '<span><a><em><strong>'); }
function get_permalink() { return 'https://blog.example.com/a-post/?q="x"'; }
function is_singular() { return $GLOBALS['singular']; }
function register_setting($group, $name, $args) { $GLOBALS['sanitize'] = $args['sanitize_callback']; }
function add_settings_section(...$args) {}
function add_settings_field(...$args) {}
function add_settings_error(...$args) { $GLOBALS['settings_errors'][] = $args[1]; }
function __($text, $domain = null) { return $text; }
function esc_html__($text, $domain = null) { return $text; }
function wp_register_script(...$args) { $GLOBALS['registered'][] = $args[1]; }
function wp_enqueue_script($handle) { $GLOBALS['enqueued'][] = $handle; }

require $argv[1];
apply('admin_init');
$template = apply('comments_template', '/theme/comments.php');
ob_start();
include $template;
$widget = ob_get_clean();
$open = apply('comments_open', true);
$singular_number = apply('comments_number', '3 Comments', 3);
$GLOBALS['singular'] = false;
apply('wp_enqueue_scripts');
$list_number = apply('comments_number', '3 Comments', 3);
$refused = ($GLOBALS['sanitize'])('javascript:alert(1)');
$kept = ($GLOBALS['sanitize'])('https://comments.example.com/');
echo json_encode(array(
    'template_is_plugin' => realpath($template) === realpath($argv[1]),
    'widget' => $widget, 'comments_open' => $open, 'singular_number' => $singular_number,
    'list_number' => $list_number, 'registered' => $GLOBALS['registered'] ?? array(),
    'enqueued' => $GLOBALS['enqueued'] ?? array(), 'refused' => $refused, 'kept' => $kept,
    'settings_errors' => $GLOBALS['settings_errors'] ?? array(),
));
