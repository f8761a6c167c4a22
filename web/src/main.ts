import { mount } from 'svelte';
import App from './App.svelte';
import { locale, pickLocale, setLocale } from './lib/i18n';
import { applyTheme, storedTheme } from './lib/theme';
import './app.css';

setLocale(pickLocale(navigator.languages ?? [navigator.language]));
document.documentElement.lang = locale();
applyTheme(storedTheme());

const target = document.getElementById('app');
if (!target) throw new Error('index.html has no #app element');
export default mount(App, { target });
